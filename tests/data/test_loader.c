/* Loader and cache tests on a small MURA tree written here: coverage of every
 * image per epoch, labels, shuffling, sharding, bit-identical results across
 * thread counts, cache vs decode agreement, unreadable images, shutdown
 * mid-epoch; plus a throughput measurement at S = 320. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/rng.h"
#include "core/util.h"
#include "data/cache.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/preprocess.h"
#include "io/image.h"
#include "test.h"

#define S 16
#define N_STUDIES 9

static char tmp_base[256];

static void cleanup(void) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_base);
  if (system(cmd)) { /* best effort */
  }
}

static const char *fresh_dir(void) {
  static int k;
  static char dir[300];
  if (!tmp_base[0]) {
    snprintf(tmp_base, sizeof tmp_base, "/tmp/mskx_test_loader_XXXXXX");
    if (!mkdtemp(tmp_base)) abort();
    atexit(cleanup);
  }
  snprintf(dir, sizeof dir, "%s/t%d", tmp_base, k++);
  mkdir_p(dir, NULL);
  return dir;
}

/* A textured grey image of w x h (not constant, so resizing and augmentation matter). */
static void write_png(const char *path, int w, int h, uint64_t seed) {
  char d[4096];
  snprintf(d, sizeof d, "%s", path);
  *strrchr(d, '/') = 0;
  mkdir_p(d, NULL);
  uint8_t *px = malloc((size_t)w * h);
  rng r = rng_for(seed, 7, 7);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      px[y * w + x] = (uint8_t)((x * 255 / w + y * 128 / h + (int)rng_below(&r, 40)) & 255);
  uint8_t *png;
  size_t len;
  if (image_encode_png(px, w, h, 1, &png, &len, NULL)) abort();
  FILE *f = fopen(path, "wb"); /* no fsync: image_write_png's would slow the test */
  if (!f || fwrite(png, 1, len, f) != len) abort();
  fclose(f);
  free(png);
  free(px);
}

/* A MURA tree (no CSVs) of N_STUDIES studies of 1-4 images of side lo..hi,
 * all in the valid split; returns the folder. */
static const char *write_tree(int lo, int hi) {
  const char *base = fresh_dir();
  static char dir[512];
  snprintf(dir, sizeof dir, "%s/MURA-v1.1", base);
  static const char *parts[] = {"XR_ELBOW", "XR_HAND", "XR_WRIST"};
  rng r = rng_for(42, 0, 0);
  for (int i = 0; i < N_STUDIES; i++) {
    int n = 1 + i % 4;
    for (int j = 1; j <= n; j++) {
      char p[1024];
      snprintf(p, sizeof p, "%s/valid/%s/patient%05d/study1_%s/image%d.png", dir, parts[i % 3], i + 1,
               i % 2 ? "positive" : "negative", j);
      int w = lo + (int)rng_below(&r, (uint64_t)(hi - lo + 1)),
          h = lo + (int)rng_below(&r, (uint64_t)(hi - lo + 1));
      write_png(p, w, h, (uint64_t)(i * 10 + j));
    }
  }
  return dir;
}

static dataset *open_tree(const char *dir) {
  dataset *d = NULL;
  mskx_err e = {0};
  if (dataset_open(dir, NULL, &d, &e)) {
    fprintf(stderr, "dataset_open: %s\n", e.msg);
    abort();
  }
  return d;
}

static loader_config small_config(int threads, int shuffle, int augment) {
  loader_config c = loader_config_default();
  c.batch_size = 4;
  c.image_size = S;
  c.threads = threads;
  c.shuffle = shuffle;
  c.augment = augment;
  c.seed = 1234;
  return c;
}

/* Everything one epoch delivers, copied out. */
typedef struct epoch_out {
  int n, n_batches;
  int idx[256], study[256], part[256];
  float label[256];
  float *px; /* n * S*S*3 */
  int counts[64];
} epoch_out;

static int run_epoch(loader *l, int epoch, epoch_out *o, mskx_err *e) {
  memset(o, 0, sizeof *o);
  int rc = loader_start_epoch(l, epoch, e);
  if (rc) return rc;
  o->px = malloc((size_t)256 * S * S * 3 * sizeof(float));
  const batch *b;
  while ((rc = loader_next(l, &b, e)) == 1) {
    if (o->n_batches < 64) o->counts[o->n_batches] = b->count;
    o->n_batches++;
    for (int i = 0; i < b->count && o->n < 256; i++, o->n++) {
      o->idx[o->n] = b->image_idx[i];
      o->study[o->n] = b->study_idx[i];
      o->part[o->n] = b->part_idx[i];
      o->label[o->n] = b->labels[i];
      memcpy(o->px + (size_t)o->n * S * S * 3, b->images + (size_t)i * S * S * 3, S * S * 3 * sizeof(float));
    }
    loader_release(l, b);
  }
  return rc;
}

static int same_epoch(const epoch_out *a, const epoch_out *b) {
  return a->n == b->n && !memcmp(a->idx, b->idx, sizeof a->idx) &&
         !memcmp(a->px, b->px, (size_t)a->n * S * S * 3 * sizeof(float)) &&
         !memcmp(a->counts, b->counts, sizeof a->counts);
}

/* The loader's tensor for one image computed directly, without the loader. */
static int direct_tensor(const ds_image *im, float *out) {
  gray_image g = {0};
  float gray[S * S];
  if (image_load(im->path, NULL, &g, NULL) || resize_gray(&g, S, 0, gray, NULL)) return -1;
  gray_image_free(&g);
  norm_params np = norm_imagenet();
  normalize_to_hwc3(gray, S, &np, out);
  return 0;
}

TEST(every_image_once_in_dataset_order) {
  dataset *d = open_tree(write_tree(20, 40));
  const ds_split *s = &d->valid;
  loader *l;
  mskx_err e = {0};
  loader_config c = small_config(2, 0, 0);
  CHECK_OK(loader_create(d, s, &c, &l, &e), &e);
  epoch_out o;
  CHECK_EQ_INT(run_epoch(l, 0, &o, &e), 0);
  CHECK_EQ_INT(o.n, s->n_images);
  CHECK_EQ_INT(loader_epoch_batches(l), (s->n_images + 3) / 4);
  CHECK_EQ_INT(o.n_batches, (s->n_images + 3) / 4);
  CHECK_EQ_INT(o.counts[o.n_batches - 1], s->n_images % 4 ? s->n_images % 4 : 4);
  float want[S * S * 3];
  for (int i = 0; i < o.n; i++) {
    const ds_image *im = &s->images[i];
    CHECK_EQ_INT(o.idx[i], i);
    CHECK_EQ_INT(o.study[i], im->study);
    CHECK_EQ_INT(o.part[i], im->part);
    CHECK(o.label[i] == (float)s->studies[im->study].label);
    CHECK(direct_tensor(im, want) == 0);
    CHECKF(!memcmp(want, o.px + (size_t)i * S * S * 3, sizeof want), "image %d tensor differs", i);
  }
  free(o.px);
  loader_destroy(l);
  dataset_free(d);
}

TEST(shuffle_covers_each_image_once_and_varies_by_epoch) {
  dataset *d = open_tree(write_tree(20, 40));
  int n = d->valid.n_images;
  loader *l;
  mskx_err e = {0};
  loader_config c = small_config(2, 1, 1);
  CHECK_OK(loader_create(d, &d->valid, &c, &l, &e), &e);
  epoch_out a, b, a2;
  CHECK_EQ_INT(run_epoch(l, 0, &a, &e), 0);
  CHECK_EQ_INT(run_epoch(l, 1, &b, &e), 0);
  CHECK_EQ_INT(run_epoch(l, 0, &a2, &e), 0);
  int seen[256] = {0}, in_order = 1;
  for (int i = 0; i < a.n; i++) {
    seen[a.idx[i]]++;
    in_order &= a.idx[i] == i;
    CHECK(a.label[i] == (float)d->valid.images[a.idx[i]].label);
  }
  CHECK_EQ_INT(a.n, n);
  for (int i = 0; i < n; i++) CHECKF(seen[i] == 1, "image %d delivered %d times", i, seen[i]);
  CHECK(!in_order);
  CHECK(memcmp(a.idx, b.idx, sizeof a.idx) != 0);
  CHECK(same_epoch(&a, &a2)); /* an epoch replays bit for bit */
  free(a.px);
  free(b.px);
  free(a2.px);
  loader_destroy(l);
  dataset_free(d);
}

TEST(bit_identical_across_thread_counts) {
  dataset *d = open_tree(write_tree(20, 40));
  mskx_err e = {0};
  epoch_out o[3];
  int threads[3] = {1, 3, 3};
  for (int k = 0; k < 3; k++) {
    loader *l;
    loader_config c = small_config(threads[k], 1, 1);
    c.prefetch = k == 2 ? 2 : 4;
    c.seed = k == 2 ? 99 : 1234;
    CHECK_OK(loader_create(d, &d->valid, &c, &l, &e), &e);
    CHECK_EQ_INT(run_epoch(l, 3, &o[k], &e), 0);
    loader_destroy(l);
  }
  CHECK(same_epoch(&o[0], &o[1]));
  CHECK(!same_epoch(&o[0], &o[2])); /* and the seed matters */
  for (int k = 0; k < 3; k++) free(o[k].px);
  dataset_free(d);
}

TEST(drop_last_sharding_and_part_mask) {
  dataset *d = open_tree(write_tree(20, 30));
  int n = d->valid.n_images;
  mskx_err e = {0};
  loader *l;
  epoch_out o;
  loader_config c = small_config(2, 1, 0);
  c.drop_last = 1;
  CHECK_OK(loader_create(d, &d->valid, &c, &l, &e), &e);
  CHECK_EQ_INT(run_epoch(l, 0, &o, &e), 0);
  CHECK_EQ_INT(o.n, n / 4 * 4);
  for (int i = 0; i < o.n_batches; i++) CHECK_EQ_INT(o.counts[i], 4);
  free(o.px);
  loader_destroy(l);

  /* Three shards without drop_last: together every image exactly once. */
  int seen[256] = {0};
  for (int r = 0; r < 3; r++) {
    c = small_config(2, 1, 0);
    c.shard_rank = r;
    c.shard_count = 3;
    CHECK_OK(loader_create(d, &d->valid, &c, &l, &e), &e);
    CHECK_EQ_INT(run_epoch(l, 5, &o, &e), 0);
    for (int i = 0; i < o.n; i++) seen[o.idx[i]]++;
    free(o.px);
    loader_destroy(l);
  }
  for (int i = 0; i < n; i++) CHECKF(seen[i] == 1, "image %d in %d shards", i, seen[i]);
  /* With drop_last every shard runs the same number of items. */
  for (int r = 0; r < 3; r++) {
    c.shard_rank = r;
    c.drop_last = 1;
    c.batch_size = 2;
    CHECK_OK(loader_create(d, &d->valid, &c, &l, &e), &e);
    CHECK_OK(loader_start_epoch(l, 0, &e), &e);
    CHECK_EQ_INT(loader_epoch_items(l), n / 3 / 2 * 2);
    loader_destroy(l);
  }

  int hand = dataset_part_index(d, "HAND");
  c = small_config(1, 1, 0);
  c.part_mask = 1ull << hand;
  CHECK_OK(loader_create(d, &d->valid, &c, &l, &e), &e);
  CHECK_EQ_INT(run_epoch(l, 0, &o, &e), 0);
  ds_counts hc = dataset_count(&d->valid, hand);
  CHECK_EQ_INT(o.n, hc.images[0] + hc.images[1]);
  for (int i = 0; i < o.n; i++) CHECK_EQ_INT(o.part[i], hand);
  free(o.px);
  loader_destroy(l);
  dataset_free(d);
}

/* Cache pixels are round(v * 255) of the decode path's v in [0, 1], so each
 * grey value moves by at most 0.5/255 (plus float rounding), i.e. each
 * normalised channel by at most 0.5/255/std[c]. */
TEST(cache_path_matches_decode_path) {
  const char *dir = write_tree(20, 40);
  dataset *d = open_tree(dir);
  const ds_split *s = &d->valid;
  mskx_err e = {0};
  char cpath[600];
  CHECK_OK(cache_default_path(cpath, sizeof cpath, dir, "valid", S, 0, &e), &e);
  cache_config cc = {.size = S, .threads = 2};
  cache *ch;
  int rebuilt;
  CHECK_OK(cache_open(cpath, s, &cc, &ch, &rebuilt, &e), &e);
  CHECK_EQ_INT(rebuilt, 1);
  CHECK_EQ_INT(cache_missing(ch), 0);
  epoch_out dec, cac;
  loader *l;
  loader_config c = small_config(2, 0, 0);
  CHECK_OK(loader_create(d, s, &c, &l, &e), &e);
  CHECK_EQ_INT(run_epoch(l, 0, &dec, &e), 0);
  loader_destroy(l);
  c.cache = ch;
  CHECK_OK(loader_create(d, s, &c, &l, &e), &e);
  CHECK_EQ_INT(run_epoch(l, 0, &cac, &e), 0);
  loader_destroy(l);
  CHECK_EQ_INT(cac.n, dec.n);
  norm_params np = norm_imagenet();
  double worst = 0;
  for (int i = 0; i < dec.n; i++) {
    gray_image g = {0};
    uint8_t u8[S * S];
    CHECK(image_load(s->images[i].path, NULL, &g, NULL) == 0);
    CHECK(resize_gray_u8(&g, S, 0, u8, NULL) == 0);
    gray_image_free(&g);
    CHECK(!memcmp(u8, cache_image(ch, i), sizeof u8));
    for (int p = 0; p < S * S * 3; p++) {
      int ch3 = p % 3;
      float want = ((float)u8[p / 3] / 255.0f - np.mean[ch3]) / np.std[ch3];
      float got = cac.px[(size_t)i * S * S * 3 + p];
      CHECKF(fabsf(got - want) <= 1e-6f, "cache tensor %d[%d]: %g vs %g", i, p, got, want);
      double dg = fabs(got - dec.px[(size_t)i * S * S * 3 + p]) * np.std[ch3];
      if (dg > worst) worst = dg;
    }
  }
  CHECKF(worst <= 0.5 / 255 + 1e-6, "cache vs decode differ by %g grey levels", worst * 255);
  free(dec.px);
  free(cac.px);
  cache_close(ch);

  /* Reopened: mapped, not rebuilt; changed image list, S or header: rebuilt. */
  CHECK_OK(cache_open(cpath, s, &cc, &ch, &rebuilt, &e), &e);
  CHECK_EQ_INT(rebuilt, 0);
  cache_close(ch);
  cc.size = S + 1;
  CHECK_OK(cache_open(cpath, s, &cc, &ch, &rebuilt, &e), &e);
  CHECK_EQ_INT(rebuilt, 1);
  cache_close(ch);
  write_png(s->images[3].path, 33, 21, 777); /* new size and mtime */
  CHECK_OK(cache_open(cpath, s, &cc, &ch, &rebuilt, &e), &e);
  CHECK_EQ_INT(rebuilt, 1);
  cache_close(ch);
  FILE *f = fopen(cpath, "r+b");
  fputs("XXXX", f); /* foreign magic */
  fclose(f);
  CHECK_OK(cache_open(cpath, s, &cc, &ch, &rebuilt, &e), &e);
  CHECK_EQ_INT(rebuilt, 1);
  cache_close(ch);
  CHECK(truncate(cpath, 5000) == 0);
  CHECK_OK(cache_open(cpath, s, &cc, &ch, &rebuilt, &e), &e);
  CHECK_EQ_INT(rebuilt, 1);
  /* A cache of another size is refused by the loader. */
  c.cache = ch;
  CHECK(loader_create(d, s, &c, &l, &e) == MSKX_EINVAL);
  CHECK(strstr(e.msg, "does not match"));
  cache_close(ch);
  dataset_free(d);
}

TEST(corrupt_image_skipped_or_fatal_in_strict_mode) {
  const char *dir = write_tree(20, 40);
  dataset *d = open_tree(dir);
  const ds_split *s = &d->valid;
  int bad = 5;
  FILE *f = fopen(s->images[bad].path, "r+b");
  CHECK(f);
  fseek(f, 40, SEEK_SET);
  fputs("this is not the rest of a PNG", f);
  fclose(f);
  CHECK(truncate(s->images[bad].path, 60) == 0);
  mskx_err e = {0};
  loader *l;
  epoch_out o;
  loader_config c = small_config(3, 1, 1);
  CHECK_OK(loader_create(d, s, &c, &l, &e), &e);
  CHECK_EQ_INT(run_epoch(l, 0, &o, &e), 0);
  CHECK_EQ_INT(o.n, s->n_images - 1);
  for (int i = 0; i < o.n; i++) CHECK(o.idx[i] != bad);
  loader_stats st;
  loader_get_stats(l, &st);
  CHECK_EQ_INT(st.skipped, 1);
  CHECK_EQ_INT(st.delivered, s->n_images - 1);
  CHECK_EQ_INT(st.n_skip_msgs, 1);
  CHECKF(strstr(st.skip_msgs[0], s->images[bad].path), "%s", st.skip_msgs[0]);
  free(o.px);
  loader_destroy(l);

  c.strict = 1;
  CHECK_OK(loader_create(d, s, &c, &l, &e), &e);
  int rc = run_epoch(l, 0, &o, &e);
  CHECK(rc < 0);
  CHECKF(strstr(e.msg, s->images[bad].path), "%s", e.msg);
  free(o.px);
  /* The loader recovers on the next epoch start (and fails again there). */
  rc = run_epoch(l, 1, &o, &e);
  CHECK(rc < 0);
  free(o.px);
  loader_destroy(l);

  /* The cache records it as missing and the loader skips it from there too. */
  char cpath[600];
  snprintf(cpath, sizeof cpath, "%s/c.mskxcache", dir);
  cache_config cc = {.size = S, .threads = 2};
  cache *ch;
  CHECK_OK(cache_open(cpath, s, &cc, &ch, NULL, &e), &e);
  CHECK_EQ_INT(cache_missing(ch), 1);
  CHECK(cache_image(ch, bad) == NULL);
  CHECK_EQ_INT(cache_n_messages(ch), 1);
  CHECK(strstr(cache_message(ch, 0), s->images[bad].path));
  c.strict = 0;
  c.cache = ch;
  CHECK_OK(loader_create(d, s, &c, &l, &e), &e);
  CHECK_EQ_INT(run_epoch(l, 0, &o, &e), 0);
  CHECK_EQ_INT(o.n, s->n_images - 1);
  free(o.px);
  loader_destroy(l);
  cache_close(ch);
  dataset_free(d);
}

TEST(destroy_mid_epoch_and_held_slots) {
  alarm(20); /* a hang becomes a failure (SIGALRM), not a stuck suite */
  dataset *d = open_tree(write_tree(20, 40));
  mskx_err e = {0};
  loader *l;
  loader_config c = small_config(3, 1, 1);
  c.batch_size = 2;
  c.prefetch = 2;
  for (int round = 0; round < 3; round++) {
    CHECK_OK(loader_create(d, &d->valid, &c, &l, &e), &e);
    CHECK_OK(loader_start_epoch(l, round, &e), &e);
    if (round > 0) {
      const batch *b1, *b2, *b3;
      CHECK_EQ_INT(loader_next(l, &b1, &e), 1);
      if (round == 2) {
        CHECK_EQ_INT(loader_next(l, &b2, &e), 1);
        /* Both slots held: an error, not a deadlock. */
        CHECK(loader_next(l, &b3, &e) < 0);
        CHECK(strstr(e.msg, "held"));
        loader_release(l, b1);
        CHECK_EQ_INT(loader_next(l, &b3, &e), 1);
        CHECK_EQ_INT(b3->index, 2);
        /* Restart mid-epoch: the new epoch is complete. */
        epoch_out o;
        CHECK_EQ_INT(run_epoch(l, 7, &o, &e), 0);
        CHECK_EQ_INT(o.n, d->valid.n_images);
        free(o.px);
        CHECK_OK(loader_start_epoch(l, 8, &e), &e);
      }
    }
    loader_destroy(l); /* workers busy or blocked on full slots */
  }
  alarm(0);
  dataset_free(d);
}

/* Throughput at S = 320 with augmentation and 2 threads from PNGs of 400-512
 * px, with and without the cache. MSKX_LOADER_BENCH_N sets the image count. */
TEST(throughput_s320) {
  const char *base = fresh_dir();
  char dir[512];
  snprintf(dir, sizeof dir, "%s/MURA-v1.1", base);
  const char *env = getenv("MSKX_LOADER_BENCH_N");
  int n = env ? atoi(env) : 32;
  if (n < 8) n = 8;
  rng r = rng_for(5, 0, 0);
  for (int i = 0; i < n; i++) {
    char p[1024];
    snprintf(p, sizeof p, "%s/train/XR_HAND/patient%05d/study1_negative/image1.png", dir, i + 1);
    write_png(p, 400 + (int)rng_below(&r, 113), 400 + (int)rng_below(&r, 113), (uint64_t)i);
  }
  dataset *d = open_tree(dir);
  mskx_err e = {0};
  loader_config c = loader_config_default();
  c.batch_size = 8;
  c.image_size = 320;
  c.threads = 2;
  double rate[2];
  cache *ch = NULL;
  for (int k = 0; k < 2; k++) {
    if (k == 1) {
      char cpath[600];
      snprintf(cpath, sizeof cpath, "%s/bench.mskxcache", base);
      cache_config cc = {.size = 320, .threads = 2};
      double t0 = now_seconds();
      CHECK_OK(cache_open(cpath, &d->train, &cc, &ch, NULL, &e), &e);
      printf("BENCH cache build: %d images in %.2f s\n", n, now_seconds() - t0);
      c.cache = ch;
    }
    loader *l;
    CHECK_OK(loader_create(d, &d->train, &c, &l, &e), &e);
    int total = 0;
    double t0 = 0;
    for (int ep = 0; ep <= 2; ep++) {
      if (ep == 1) t0 = now_seconds(), total = 0; /* epoch 0 warms the page cache */
      CHECK_OK(loader_start_epoch(l, ep, &e), &e);
      const batch *b;
      int rc;
      while ((rc = loader_next(l, &b, &e)) == 1) {
        total += b->count;
        loader_release(l, b);
      }
      CHECK_EQ_INT(rc, 0);
    }
    rate[k] = total / (now_seconds() - t0);
    CHECK_EQ_INT(total, 2 * n);
    loader_destroy(l);
  }
  printf(
      "BENCH loader S=320 B=8 aug=mura threads=2, %d PNGs of 400-512 px: decode %.0f images/s, cache %.0f "
      "images/s\n",
      n, rate[0], rate[1]);
  cache_close(ch);
  dataset_free(d);
}

TEST_MAIN()
