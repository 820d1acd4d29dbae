/* The threaded batch loader (see loader.h). Batch k of an epoch is filled in
 * ring slot k % prefetch; workers claim images in epoch order, but only for
 * batches whose slot is free, so at most `prefetch` batches exist at once and
 * nothing is allocated after loader_create. */
#include "data/loader.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/affinity.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/util.h"

#define LOADER_MAX_THREADS 256
#define LOADER_MAX_PREFETCH 64
#define LOADER_MAX_SIZE 8192

enum slot_state { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_HELD };

typedef struct slot {
  batch b;
  int state;
  int batch_no;       /* batch of the epoch it holds, -1 when free */
  int expected, done; /* images assigned to the batch, images finished */
  unsigned char *ok;  /* per position: 1 read, 0 skipped */
} slot;

typedef struct worker {
  loader *l;
  pthread_t tid;
  float *gray, *aug; /* S*S scratch each */
} worker;

struct loader {
  const dataset *d;
  const ds_split *s;
  loader_config cfg;
  int do_augment;
  size_t px;     /* S*S */
  int64_t *base; /* selected images in dataset order */
  int n_base;
  int64_t *order; /* this epoch's items */
  int n_items, n_batches;
  slot *slots;
  int n_slots;
  worker *workers;
  int n_workers;

  pthread_mutex_t mu;
  pthread_cond_t work_cv;  /* workers: an item may be claimable, or stop */
  pthread_cond_t ready_cv; /* consumer: a slot became ready, or failure */
  pthread_cond_t idle_cv;  /* start_epoch: busy dropped to 0 */
  int stop, started, epoch;
  int next_item, next_deliver, busy;
  int failed;
  mskx_err err;
  double t_start;
  long long delivered, skipped, total_skipped;
  char skip_msgs[LOADER_SKIP_MSGS][512];
  int skip_head, n_skip;
};

loader_config loader_config_default(void) {
  loader_config c;
  memset(&c, 0, sizeof c);
  c.batch_size = 16;
  c.image_size = 320;
  c.threads = 2;
  c.prefetch = LOADER_DEFAULT_PREFETCH;
  c.shuffle = 1;
  c.augment = 1;
  c.aug = aug_mura_default();
  c.norm = norm_imagenet();
  c.shard_count = 1;
  return c;
}

/* One image into dst (S x S x 3): pixels from the cache or a decode, then
 * augmentation keyed by (seed, epoch, image) and normalisation. */
static int process_image(loader *l, worker *w, int epoch, int img, float *dst, mskx_err *e) {
  const loader_config *c = &l->cfg;
  const ds_image *im = &l->s->images[img];
  if (c->cache) {
    const uint8_t *p = cache_image(c->cache, img);
    if (!p) return err_set(e, MSKX_EIO, "%s: unreadable when the preprocessing cache was built", im->path);
    for (size_t i = 0; i < l->px; i++) w->gray[i] = (float)p[i] / 255.0f;
  } else {
    int rc = resize_file(im->path, &c->limits, c->image_size, c->keep_aspect, w->gray, e);
    if (rc) {
      if (!strstr(e->msg, im->path)) err_prefix(e, "%s", im->path);
      return rc;
    }
  }
  const float *src = w->gray;
  if (l->do_augment) {
    /* Stream 0 of the epoch is the shuffle; images use 1 + index. */
    rng r = rng_for(c->seed, (uint64_t)epoch, (uint64_t)img + 1);
    augment_gray(&c->aug, &r, w->gray, c->image_size, w->aug);
    src = w->aug;
  }
  normalize_to_hwc3(src, c->image_size, &c->norm, dst);
  return MSKX_OK;
}

/* Moves the read images of a finished slot to the front, in order. */
static void compact_slot(loader *l, slot *sl) {
  batch *b = &sl->b;
  size_t n3 = l->px * 3;
  int w = 0;
  for (int j = 0; j < sl->expected; j++) {
    if (!sl->ok[j]) continue;
    if (w != j) {
      memmove(b->images + (size_t)w * n3, b->images + (size_t)j * n3, n3 * sizeof(float));
      b->labels[w] = b->labels[j];
      b->image_idx[w] = b->image_idx[j];
      b->study_idx[w] = b->study_idx[j];
      b->part_idx[w] = b->part_idx[j];
    }
    w++;
  }
  b->count = w;
}

static void note_skip(loader *l, const mskx_err *e) {
  str_copy_marked(l->skip_msgs[l->skip_head], sizeof l->skip_msgs[0], e->msg);
  l->skip_head = (l->skip_head + 1) % LOADER_SKIP_MSGS;
  if (l->n_skip < LOADER_SKIP_MSGS) l->n_skip++;
  l->skipped++;
  l->total_skipped++;
}

/* With the lock held: the slot of the next item if that item may be claimed now. */
static slot *claimable(loader *l) {
  if (!l->started || l->failed || l->next_item >= l->n_items) return NULL;
  int k = l->next_item / l->cfg.batch_size;
  slot *sl = &l->slots[k % l->n_slots];
  if (sl->state == SLOT_FREE) {
    int left = l->n_items - k * l->cfg.batch_size;
    sl->state = SLOT_FILLING;
    sl->batch_no = k;
    sl->expected = left < l->cfg.batch_size ? left : l->cfg.batch_size;
    sl->done = 0;
    sl->b.index = k;
    sl->b.epoch = l->epoch;
  }
  return sl->state == SLOT_FILLING && sl->batch_no == k ? sl : NULL;
}

static void *worker_main(void *arg) {
  thread_unpin(); /* decode anywhere, not on the compute thread's CPU it was started from */
  worker *w = arg;
  loader *l = w->l;
  pthread_mutex_lock(&l->mu);
  while (!l->stop) {
    slot *sl = claimable(l);
    if (!sl) {
      pthread_cond_wait(&l->work_cv, &l->mu);
      continue;
    }
    int pos = l->next_item++;
    int j = pos - sl->batch_no * l->cfg.batch_size;
    int img = (int)l->order[pos], epoch = l->epoch;
    l->busy++;
    pthread_mutex_unlock(&l->mu);

    batch *b = &sl->b;
    mskx_err ie = {0};
    int rc = process_image(l, w, epoch, img, b->images + (size_t)j * l->px * 3, &ie);
    const ds_image *im = &l->s->images[img];
    b->labels[j] = (float)im->label;
    b->image_idx[j] = img;
    b->study_idx[j] = im->study;
    b->part_idx[j] = im->part;
    sl->ok[j] = rc == MSKX_OK;

    pthread_mutex_lock(&l->mu);
    if (rc && l->cfg.strict) {
      if (!l->failed) l->err = ie;
      l->failed = 1;
      pthread_cond_broadcast(&l->ready_cv);
    } else if (rc) {
      note_skip(l, &ie);
    }
    int last = ++sl->done == sl->expected;
    if (last) {
      /* Every image of the batch is in: no other thread touches this slot now. */
      pthread_mutex_unlock(&l->mu);
      compact_slot(l, sl);
      pthread_mutex_lock(&l->mu);
      sl->state = SLOT_READY;
      pthread_cond_broadcast(&l->ready_cv);
    }
    if (--l->busy == 0) pthread_cond_broadcast(&l->idle_cv);
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

static int check_config(const dataset *d, const ds_split *s, const loader_config *c, mskx_err *e) {
  if (c->batch_size < 1 || c->batch_size > 65536)
    return err_set(e, MSKX_EINVAL, "loader: batch size %d is outside [1, 65536]", c->batch_size);
  if (c->image_size < 1 || c->image_size > LOADER_MAX_SIZE)
    return err_set(e, MSKX_EINVAL, "loader: image size %d is outside [1, %d]", c->image_size,
                   LOADER_MAX_SIZE);
  if (c->threads < 1 || c->threads > LOADER_MAX_THREADS)
    return err_set(e, MSKX_EINVAL, "loader: %d threads is outside [1, %d]", c->threads, LOADER_MAX_THREADS);
  if (c->prefetch && (c->prefetch < 2 || c->prefetch > LOADER_MAX_PREFETCH))
    return err_set(e, MSKX_EINVAL, "loader: prefetch %d is outside [2, %d]", c->prefetch,
                   LOADER_MAX_PREFETCH);
  int sc = c->shard_count ? c->shard_count : 1;
  if (sc < 1 || c->shard_rank < 0 || c->shard_rank >= sc)
    return err_set(e, MSKX_EINVAL, "loader: shard rank %d of %d is invalid", c->shard_rank, c->shard_count);
  if (c->part_mask && d->n_parts > DS_MAX_PARTS)
    return err_set(e, MSKX_EUNSUPPORTED, "loader: a part mask covers %d parts, the dataset has %d", DS_MAX_PARTS,
                   d->n_parts);
  size_t bytes;
  if (!size_mul((size_t)c->image_size * (size_t)c->image_size * 3 * sizeof(float), (size_t)c->batch_size,
                &bytes) ||
      bytes > ((size_t)1 << 36))
    return err_set(e, MSKX_ELIMIT, "loader: a batch of %d images of %dx%d is too large", c->batch_size,
                   c->image_size, c->image_size);
  if (c->cache && (cache_count(c->cache) != s->n_images || cache_size(c->cache) != c->image_size ||
                   cache_keep_aspect(c->cache) != !!c->keep_aspect))
    return err_set(
        e, MSKX_EINVAL,
        "loader: the cache (%d images, S=%d, keep_aspect %d) does not match the %s split (%d images, "
        "S=%d, keep_aspect %d)",
        cache_count(c->cache), cache_size(c->cache), cache_keep_aspect(c->cache), s->name, s->n_images,
        c->image_size, !!c->keep_aspect);
  return MSKX_OK;
}

static void *alloc_aligned(size_t bytes) {
  size_t n = (bytes + 63) / 64 * 64;
  return aligned_alloc(64, n ? n : 64);
}

static int alloc_buffers(loader *l) {
  int B = l->cfg.batch_size;
  l->slots = calloc((size_t)l->n_slots, sizeof *l->slots);
  l->workers = calloc((size_t)l->cfg.threads, sizeof *l->workers);
  l->base = malloc((size_t)(l->s->n_images ? l->s->n_images : 1) * sizeof *l->base);
  l->order = malloc((size_t)(l->s->n_images ? l->s->n_images : 1) * sizeof *l->order);
  if (!l->slots || !l->workers || !l->base || !l->order) return -1;
  for (int i = 0; i < l->n_slots; i++) {
    slot *sl = &l->slots[i];
    sl->batch_no = -1;
    sl->b.size = l->cfg.image_size;
    sl->b.images = alloc_aligned((size_t)B * l->px * 3 * sizeof(float));
    sl->b.labels = malloc((size_t)B * sizeof(float));
    sl->b.image_idx = malloc((size_t)B * sizeof(int));
    sl->b.study_idx = malloc((size_t)B * sizeof(int));
    sl->b.part_idx = malloc((size_t)B * sizeof(int));
    sl->ok = malloc((size_t)B);
    if (!sl->b.images || !sl->b.labels || !sl->b.image_idx || !sl->b.study_idx || !sl->b.part_idx || !sl->ok)
      return -1;
  }
  for (int i = 0; i < l->cfg.threads; i++) {
    l->workers[i].l = l;
    l->workers[i].gray = alloc_aligned(l->px * sizeof(float));
    l->workers[i].aug = alloc_aligned(l->px * sizeof(float));
    if (!l->workers[i].gray || !l->workers[i].aug) return -1;
  }
  return 0;
}

int loader_create(const dataset *d, const ds_split *s, const loader_config *cfg, loader **out, mskx_err *e) {
  *out = NULL;
  int rc = check_config(d, s, cfg, e);
  if (rc) return rc;
  loader *l = calloc(1, sizeof *l);
  if (!l) return err_set(e, MSKX_ENOMEM, "loader: out of memory");
  l->d = d;
  l->s = s;
  l->cfg = *cfg;
  if (!l->cfg.shard_count) l->cfg.shard_count = 1;
  l->n_slots = cfg->prefetch ? cfg->prefetch : LOADER_DEFAULT_PREFETCH;
  l->px = (size_t)cfg->image_size * (size_t)cfg->image_size;
  l->do_augment = cfg->augment && !aug_is_identity(&cfg->aug);
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->work_cv, NULL);
  pthread_cond_init(&l->ready_cv, NULL);
  pthread_cond_init(&l->idle_cv, NULL);
  if (alloc_buffers(l)) {
    loader_destroy(l);
    return err_set(e, MSKX_ENOMEM, "loader: out of memory for %d batch slots of %d images of %dx%d",
                   l->n_slots, cfg->batch_size, cfg->image_size, cfg->image_size);
  }
  for (int i = 0; i < s->n_images; i++)
    if (!cfg->part_mask || (s->images[i].part < DS_MAX_PARTS && (cfg->part_mask >> s->images[i].part & 1)))
      l->base[l->n_base++] = i;
  for (int i = 0; i < cfg->threads; i++) {
    if (pthread_create(&l->workers[i].tid, NULL, worker_main, &l->workers[i])) {
      loader_destroy(l);
      return err_set(e, MSKX_EINTERNAL, "loader: cannot start worker thread %d", i);
    }
    l->n_workers++;
  }
  *out = l;
  return MSKX_OK;
}

/* This epoch's items: the selection, shuffled, then this shard's share. */
static void build_order(loader *l, int epoch) {
  const loader_config *c = &l->cfg;
  int n = l->n_base, R = c->shard_count;
  int64_t *all = l->order;
  memcpy(all, l->base, (size_t)n * sizeof *all);
  if (c->shuffle) {
    rng r = rng_for(c->seed, (uint64_t)epoch, 0);
    rng_shuffle(&r, all, n);
  }
  /* With drop_last every shard gets the same count, so ranks stepping in
   * lockstep (MPI) run the same number of batches. */
  if (R > 1 && c->drop_last) n = n / R * R;
  int m = 0;
  for (int i = c->shard_rank; i < n; i += R) all[m++] = all[i];
  if (c->drop_last) m = m / c->batch_size * c->batch_size;
  l->n_items = m;
  l->n_batches = (m + c->batch_size - 1) / c->batch_size;
}

int loader_start_epoch(loader *l, int epoch, mskx_err *e) {
  if (epoch < 0) return err_set(e, MSKX_EINVAL, "loader: epoch %d is negative", epoch);
  pthread_mutex_lock(&l->mu);
  l->started = 0; /* no more claims; wait for images in hand */
  while (l->busy) pthread_cond_wait(&l->idle_cv, &l->mu);
  for (int i = 0; i < l->n_slots; i++) {
    l->slots[i].state = SLOT_FREE;
    l->slots[i].batch_no = -1;
  }
  l->epoch = epoch;
  build_order(l, epoch);
  l->next_item = l->next_deliver = 0;
  l->failed = 0;
  err_clear(&l->err);
  l->delivered = l->skipped = 0;
  l->t_start = now_seconds();
  l->started = 1;
  pthread_cond_broadcast(&l->work_cv);
  pthread_mutex_unlock(&l->mu);
  return MSKX_OK;
}

int loader_next(loader *l, const batch **out, mskx_err *e) {
  *out = NULL;
  pthread_mutex_lock(&l->mu);
  int rc = 0;
  for (;;) {
    if (!l->started) {
      rc = -err_set(e, MSKX_EINVAL, "loader: loader_next before loader_start_epoch");
      break;
    }
    if (l->failed) {
      if (e) *e = l->err;
      rc = -(l->err.code ? l->err.code : MSKX_EIO);
      break;
    }
    if (l->next_deliver >= l->n_batches) break;
    slot *sl = &l->slots[l->next_deliver % l->n_slots];
    if (sl->state == SLOT_READY && sl->batch_no == l->next_deliver) {
      l->next_deliver++;
      if (sl->b.count == 0) { /* every image of it was skipped */
        sl->state = SLOT_FREE;
        sl->batch_no = -1;
        pthread_cond_broadcast(&l->work_cv);
        continue;
      }
      sl->state = SLOT_HELD;
      l->delivered += sl->b.count;
      *out = &sl->b;
      rc = 1;
      break;
    }
    if (sl->state == SLOT_HELD) {
      rc = -err_set(e, MSKX_EINVAL,
                    "loader: all %d batch slots are held; release a batch before asking for another",
                    l->n_slots);
      break;
    }
    pthread_cond_wait(&l->ready_cv, &l->mu);
  }
  pthread_mutex_unlock(&l->mu);
  return rc;
}

void loader_release(loader *l, const batch *b) {
  if (!b) return;
  pthread_mutex_lock(&l->mu);
  for (int i = 0; i < l->n_slots; i++)
    if (&l->slots[i].b == b && l->slots[i].state == SLOT_HELD) {
      l->slots[i].state = SLOT_FREE;
      l->slots[i].batch_no = -1;
      pthread_cond_broadcast(&l->work_cv);
    }
  pthread_mutex_unlock(&l->mu);
}

int loader_epoch_items(const loader *l) { return l->n_items; }
int loader_epoch_batches(const loader *l) { return l->n_batches; }

void loader_get_stats(loader *l, loader_stats *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&l->mu);
  double dt = now_seconds() - l->t_start;
  out->delivered = l->delivered;
  out->images_per_s = l->started && dt > 0 ? (double)l->delivered / dt : 0;
  out->skipped = l->skipped;
  out->total_skipped = l->total_skipped;
  out->n_skip_msgs = l->n_skip;
  for (int i = 0; i < l->n_skip; i++) {
    int k = (l->skip_head - l->n_skip + i + LOADER_SKIP_MSGS) % LOADER_SKIP_MSGS;
    memcpy(out->skip_msgs[i], l->skip_msgs[k], sizeof out->skip_msgs[i]);
  }
  pthread_mutex_unlock(&l->mu);
}

void loader_destroy(loader *l) {
  if (!l) return;
  pthread_mutex_lock(&l->mu);
  l->stop = 1;
  pthread_cond_broadcast(&l->work_cv);
  pthread_mutex_unlock(&l->mu);
  for (int i = 0; i < l->n_workers; i++) pthread_join(l->workers[i].tid, NULL);
  if (l->slots)
    for (int i = 0; i < l->n_slots; i++) {
      slot *sl = &l->slots[i];
      free(sl->b.images);
      free(sl->b.labels);
      free(sl->b.image_idx);
      free(sl->b.study_idx);
      free(sl->b.part_idx);
      free(sl->ok);
    }
  if (l->workers)
    for (int i = 0; i < l->cfg.threads; i++) {
      free(l->workers[i].gray);
      free(l->workers[i].aug);
    }
  free(l->slots);
  free(l->workers);
  free(l->base);
  free(l->order);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->work_cv);
  pthread_cond_destroy(&l->ready_cv);
  pthread_cond_destroy(&l->idle_cv);
  free(l);
}
