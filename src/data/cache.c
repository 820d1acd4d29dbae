/* Preprocessing cache (see cache.h). File layout, native little-endian:
 * a 64-byte header, one status byte per image (1 read, 0 unreadable), zero
 * padding to a page boundary, then count * S * S pixels in split order. */
#include "data/cache.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/error.h"
#include "core/util.h"
#include "data/preprocess.h"

#define CACHE_MAGIC "MSKXCACH"
#define CACHE_HEADER_BYTES 64
#define CACHE_ALIGN 4096
/* Images decoded per parallel step while building: bounds the build's memory. */
#define CACHE_CHUNK 64
#define CACHE_MAX_MESSAGES 16

typedef struct cache_header {
  char magic[8];
  uint32_t version, size, keep_aspect, reserved0;
  uint64_t count, hash, n_missing, data_offset, reserved1;
} cache_header;
_Static_assert(sizeof(cache_header) == CACHE_HEADER_BYTES, "cache header must be 64 bytes");

struct cache {
  const uint8_t *map;
  size_t map_len;
  const uint8_t *status, *pixels;
  int size, keep_aspect, count, n_missing;
  char *msgs[CACHE_MAX_MESSAGES];
  int n_msgs;
};

int cache_list_hash(const ds_split *s, uint64_t *hash, mskx_err *e) {
  (void)e;
  uint64_t h = FNV1A_INIT;
  for (int i = 0; i < s->n_images; i++) {
    struct stat st;
    int64_t meta[3] = {-1, 0, 0};
    if (stat(s->images[i].path, &st) == 0)
      meta[0] = (int64_t)st.st_size, meta[1] = (int64_t)st.st_mtim.tv_sec,
      meta[2] = (int64_t)st.st_mtim.tv_nsec;
    h = fnv1a(h, s->images[i].rel, strlen(s->images[i].rel) + 1);
    h = fnv1a(h, meta, sizeof meta);
  }
  *hash = h;
  return MSKX_OK;
}

int cache_default_path(char *out, size_t n, const char *dir, const char *split, int size, int keep_aspect,
                       mskx_err *e) {
  int w = snprintf(out, n, "%s/%s_%d%s.mskxcache", dir, split, size, keep_aspect ? "_aspect" : "");
  if (w < 0 || (size_t)w >= n) return err_set(e, MSKX_EINVAL, "%s: cache path too long", dir);
  return MSKX_OK;
}

static size_t data_offset(uint64_t count) {
  size_t raw = CACHE_HEADER_BYTES + (size_t)count;
  return (raw + CACHE_ALIGN - 1) / CACHE_ALIGN * CACHE_ALIGN;
}

/* Maps path if it is a current cache for (s, cfg, hash). *mapped = 0 when it
 * is absent or stale (then it must be rebuilt). */
static int try_map(const char *path, const ds_split *s, const cache_config *cfg, uint64_t hash, cache *c,
                   int *mapped, mskx_err *e) {
  *mapped = 0;
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return errno == ENOENT ? MSKX_OK : err_set(e, MSKX_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  cache_header h;
  size_t px = (size_t)cfg->size * (size_t)cfg->size;
  size_t want = data_offset((uint64_t)s->n_images) + (size_t)s->n_images * px;
  int current = fstat(fd, &st) == 0 && (size_t)st.st_size == want && pread(fd, &h, sizeof h, 0) == sizeof h &&
                !memcmp(h.magic, CACHE_MAGIC, 8) && h.version == CACHE_FORMAT_VERSION &&
                h.size == (uint32_t)cfg->size && h.keep_aspect == (uint32_t) !!cfg->keep_aspect &&
                h.count == (uint64_t)s->n_images && h.hash == hash &&
                h.data_offset == data_offset((uint64_t)s->n_images) && h.n_missing <= h.count;
  if (!current) {
    close(fd);
    return MSKX_OK;
  }
  void *m = mmap(NULL, want, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return err_set(e, MSKX_EIO, "%s: cannot map: %s", path, strerror(errno));
  c->map = m;
  c->map_len = want;
  c->status = c->map + CACHE_HEADER_BYTES;
  c->pixels = c->map + h.data_offset;
  c->size = cfg->size;
  c->keep_aspect = !!cfg->keep_aspect;
  c->count = s->n_images;
  c->n_missing = 0;
  for (int i = 0; i < c->count; i++) c->n_missing += c->status[i] == 0;
  *mapped = 1;
  return MSKX_OK;
}

/* Decodes and resizes images [i0, i0+n) into buf (n * S*S bytes), in parallel. */
static void build_chunk(const ds_split *s, const cache_config *cfg, int i0, int n, uint8_t *buf,
                        uint8_t *status, cache *c) {
  size_t px = (size_t)cfg->size * (size_t)cfg->size;
  int threads = cfg->threads > 0 ? cfg->threads : 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int j = 0; j < n; j++) {
    const ds_image *im = &s->images[i0 + j];
    mskx_err ie = {0};
    int rc = resize_file_u8(im->path, &cfg->limits, cfg->size, cfg->keep_aspect, buf + (size_t)j * px, &ie);
    status[i0 + j] = rc == MSKX_OK;
    if (rc) {
      memset(buf + (size_t)j * px, 0, px);
#pragma omp critical(cache_messages)
      if (c->n_msgs < CACHE_MAX_MESSAGES) {
        char msg[sizeof ie.msg + 300];
        if (strstr(ie.msg, im->path))
          snprintf(msg, sizeof msg, "%s", ie.msg);
        else
          snprintf(msg, sizeof msg, "%s: %s", im->path, ie.msg);
        c->msgs[c->n_msgs] = str_dup(msg);
        if (c->msgs[c->n_msgs]) c->n_msgs++;
      }
    }
  }
}

static int build(const char *path, const ds_split *s, const cache_config *cfg, uint64_t hash, cache *c,
                 mskx_err *e) {
  int n = s->n_images;
  size_t px = (size_t)cfg->size * (size_t)cfg->size;
  size_t off = data_offset((uint64_t)n);
  uint8_t *status = calloc((size_t)n + 1, 1);
  uint8_t *buf = malloc(CACHE_CHUNK * px);
  uint8_t *pad = calloc(CACHE_ALIGN, 1);
  if (!status || !buf || !pad) {
    free(status);
    free(buf);
    free(pad);
    return err_set(e, MSKX_ENOMEM, "%s: out of memory building the cache", path);
  }
  atomic_file af;
  int rc = atomic_file_open(&af, path, e);
  /* Header and status bytes are written last, once known; reserve their place. */
  size_t lead = off;
  while (!rc && lead) {
    size_t k = lead < CACHE_ALIGN ? lead : CACHE_ALIGN;
    rc = atomic_file_write(&af, pad, k, e);
    lead -= k;
  }
  for (int i0 = 0; !rc && i0 < n; i0 += CACHE_CHUNK) {
    int k = n - i0 < CACHE_CHUNK ? n - i0 : CACHE_CHUNK;
    build_chunk(s, cfg, i0, k, buf, status, c);
    rc = atomic_file_write(&af, buf, px * (size_t)k, e);
  }
  cache_header h = {.version = CACHE_FORMAT_VERSION,
                    .size = (uint32_t)cfg->size,
                    .keep_aspect = (uint32_t) !!cfg->keep_aspect,
                    .count = (uint64_t)n,
                    .hash = hash,
                    .data_offset = off};
  memcpy(h.magic, CACHE_MAGIC, 8);
  for (int i = 0; i < n; i++) h.n_missing += status[i] == 0;
  if (!rc && fseek(af.f, 0, SEEK_SET) != 0)
    rc = err_set(e, MSKX_EIO, "%s: write failed: %s", path, strerror(errno));  /* the seek flushes */
  if (!rc) rc = atomic_file_write(&af, &h, sizeof h, e);
  if (!rc) rc = atomic_file_write(&af, status, (size_t)n, e);
  free(status);
  free(buf);
  free(pad);
  if (rc) {
    atomic_file_abort(&af);
    return rc;
  }
  return atomic_file_commit(&af, e);
}

static int check_config(const char *path, const ds_split *s, const cache_config *cfg, mskx_err *e) {
  if (cfg->size < 1 || cfg->size > 8192)
    return err_set(e, MSKX_EINVAL, "%s: cache image size %d is outside [1, 8192]", path, cfg->size);
  size_t px = (size_t)cfg->size * (size_t)cfg->size, total;
  if (!size_mul(px, (size_t)s->n_images, &total) || total > ((size_t)1 << 46))
    return err_set(e, MSKX_ELIMIT, "%s: a cache of %d images of %dx%d is too large", path, s->n_images,
                   cfg->size, cfg->size);
  return MSKX_OK;
}

int cache_open(const char *path, const ds_split *s, const cache_config *cfg, cache **out, int *rebuilt,
               mskx_err *e) {
  *out = NULL;
  if (rebuilt) *rebuilt = 0;
  int rc = check_config(path, s, cfg, e);
  if (rc) return rc;
  cache *c = calloc(1, sizeof *c);
  if (!c) return err_set(e, MSKX_ENOMEM, "out of memory");
  uint64_t hash;
  if ((rc = cache_list_hash(s, &hash, e))) {
    free(c);
    return rc;
  }
  char lock[4200];
  snprintf(lock, sizeof lock, "%s.lock", path);
  int lfd = open(lock, O_CREAT | O_RDWR | O_CLOEXEC, 0666);
  if (lfd >= 0) flock(lfd, LOCK_EX); /* no lock (read-only folder): a current cache can still be mapped */
  int mapped = 0;
  rc = try_map(path, s, cfg, hash, c, &mapped, e);
  if (!rc && !mapped) {
    rc = build(path, s, cfg, hash, c, e);
    if (!rc) rc = try_map(path, s, cfg, hash, c, &mapped, e);
    if (!rc && !mapped) rc = err_set(e, MSKX_EINTERNAL, "%s: cache changed while it was being built", path);
    if (!rc && rebuilt) *rebuilt = 1;
  }
  if (lfd >= 0) close(lfd);
  if (rc) {
    cache_close(c);
    return rc;
  }
  *out = c;
  return MSKX_OK;
}

void cache_close(cache *c) {
  if (!c) return;
  if (c->map) munmap((void *)c->map, c->map_len);
  for (int i = 0; i < c->n_msgs; i++) free(c->msgs[i]);
  free(c);
}

const uint8_t *cache_image(const cache *c, int i) {
  if (i < 0 || i >= c->count || !c->status[i]) return NULL;
  return c->pixels + (size_t)i * (size_t)c->size * (size_t)c->size;
}

int cache_size(const cache *c) { return c->size; }
int cache_keep_aspect(const cache *c) { return c->keep_aspect; }
int cache_count(const cache *c) { return c->count; }
int cache_missing(const cache *c) { return c->n_missing; }
int cache_n_messages(const cache *c) { return c->n_msgs; }
const char *cache_message(const cache *c, int i) { return i >= 0 && i < c->n_msgs ? c->msgs[i] : NULL; }
