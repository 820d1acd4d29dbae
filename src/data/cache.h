/* Preprocessing cache: every image of a split decoded and resized once to
 * S x S 8-bit grey, stored in one file and memory-mapped on later runs, so
 * training epochs skip PNG/JPEG decoding. The file is rebuilt whenever the
 * image list (paths, sizes, mtimes), S, keep_aspect or the format changes. */
#ifndef MSKX_DATA_CACHE_H
#define MSKX_DATA_CACHE_H
#include <stddef.h>
#include <stdint.h>
#include "data/dataset.h"
#include "io/image.h"
#include "mskx.h"

#define CACHE_FORMAT_VERSION 1u

typedef struct cache_config {
  int size;            /* S */
  int keep_aspect;     /* as resize_gray_u8 */
  int threads;         /* decoding threads while building (<= 0: 1) */
  image_limits limits; /* decode limits while building */
} cache_config;

typedef struct cache cache;

/* Opens the cache file at path for split s: maps it if it is current,
 * otherwise (missing, stale, truncated or foreign) rebuilds it atomically
 * first. Concurrent openers (e.g. MPI ranks) serialise on "<path>.lock", so
 * one builds and the others map its result. *rebuilt (may be NULL) tells
 * whether this call built it. Unreadable images are recorded as missing,
 * not errors. */
int cache_open(const char *path, const ds_split *s, const cache_config *cfg, cache **out, int *rebuilt,
               mskx_err *e);
void cache_close(cache *c);

/* The S*S pixels of image i of the split, or NULL if it was unreadable. */
const uint8_t *cache_image(const cache *c, int i);
int cache_size(const cache *c);
int cache_keep_aspect(const cache *c);
int cache_count(const cache *c);
int cache_missing(const cache *c);
/* Messages of the first unreadable images (only after a build; a mapped cache
 * only knows which images are missing). */
int cache_n_messages(const cache *c);
const char *cache_message(const cache *c, int i);

/* The 64-bit key of a split's image list: rel paths, file sizes and mtimes
 * in order. A missing file hashes as size -1. */
int cache_list_hash(const ds_split *s, uint64_t *hash, mskx_err *e);

/* Conventional file name: "<dir>/<split>_<S>[_aspect].mskxcache". */
int cache_default_path(char *out, size_t n, const char *dir, const char *split, int size, int keep_aspect,
                       mskx_err *e);

#endif
