/* The batch loader: worker threads turn the images of a split into batches of
 * (B, S, S, 3) float32 channels-last network inputs (decode or cache read ->
 * resize -> augment -> normalise), ahead of the consumer through a fixed ring
 * of batch slots. Results are bit-identical for a given (seed, epoch) whatever
 * the number of threads: every random draw is keyed by (seed, epoch, image). */
#ifndef MSKX_DATA_LOADER_H
#define MSKX_DATA_LOADER_H
#include <stdint.h>
#include "data/cache.h"
#include "data/dataset.h"
#include "data/preprocess.h"
#include "mskx.h"

#define LOADER_DEFAULT_PREFETCH 3
#define LOADER_SKIP_MSGS 8

typedef struct loader_config {
  int batch_size;  /* B */
  int image_size;  /* S */
  int keep_aspect; /* as resize_gray */
  int threads;     /* worker threads, >= 1 */
  int prefetch;    /* batch slots in the ring, >= 2 (0: LOADER_DEFAULT_PREFETCH); the
                      consumer may hold up to prefetch - 1 batches while workers fill the rest */
  int shuffle;     /* per-epoch order from rng_for(seed, epoch, 0); off: dataset order */
  int drop_last;   /* drop the last incomplete batch */
  int strict;      /* an unreadable image is an error instead of being skipped */
  int augment;     /* apply aug (training) */
  uint64_t seed;
  aug_config aug;
  norm_params norm;
  uint64_t part_mask; /* bit p selects part p; 0 selects every part */
  int shard_rank;     /* this process takes items shard_rank, +shard_count, ... */
  int shard_count;    /* of the (shuffled) order; 0 or 1: no sharding */
  image_limits limits;
  const cache *cache; /* optional: read pixels from it instead of decoding */
} loader_config;

/* B = 16, S = 320, 2 threads, shuffle, augment with the MURA paper's
 * augmentation, ImageNet normalisation, seed 0, everything else off. */
loader_config loader_config_default(void);

typedef struct batch {
  float *images;  /* count x S x S x 3 */
  float *labels;  /* 0 normal, 1 abnormal */
  int *image_idx; /* index into split.images */
  int *study_idx; /* index into split.studies */
  int *part_idx;  /* index into dataset.parts */
  int count;      /* 1..B images (fewer at the epoch end or after skipped images) */
  int index;      /* batch number within the epoch */
  int epoch;
  int size; /* S */
} batch;

typedef struct loader_stats {
  double images_per_s;     /* images delivered this epoch / seconds since the epoch started */
  long long delivered;     /* images delivered this epoch */
  long long skipped;       /* unreadable images skipped this epoch */
  long long total_skipped; /* since creation */
  int n_skip_msgs;         /* the most recent skip messages, newest last */
  char skip_msgs[LOADER_SKIP_MSGS][512];
} loader_stats;

typedef struct loader loader;

/* Starts the worker threads (idle until loader_start_epoch). d and s (and
 * cfg->cache) must outlive the loader. */
int loader_create(const dataset *d, const ds_split *s, const loader_config *cfg, loader **out, mskx_err *e);

/* Begins epoch `epoch` (any value >= 0): builds its order and lets workers
 * run. Work of a previous epoch is abandoned and batches not yet released
 * become invalid. */
int loader_start_epoch(loader *l, int epoch, mskx_err *e);

/* Waits for the next batch of the epoch, in order. Three-valued, unlike the
 * library's 0-or-error convention, so that a consumer's loop reads
 * `while ((got = loader_next(l, &b, e)) > 0)`:
 *    1            a batch: *out is set; give it back with loader_release
 *    0            the epoch has ended: *out is NULL
 *   -MSKX_E...    failed, *out NULL and e filled (negate for the status):
 *                 an unreadable image in strict mode, every slot held by
 *                 the caller, or no loader_start_epoch yet (MSKX_EINVAL) */
int loader_next(loader *l, const batch **out, mskx_err *e);

/* Gives a batch's slot back to the workers. */
void loader_release(loader *l, const batch *b);

/* Images and batches per epoch after the part mask, sharding and drop_last
 * (skipped unreadable images can make batches smaller, or drop empty ones). */
int loader_epoch_items(const loader *l);
int loader_epoch_batches(const loader *l);

void loader_get_stats(loader *l, loader_stats *out);

/* Stops and joins the workers (they finish the image in hand) and frees
 * everything; safe at any point, including mid-epoch. */
void loader_destroy(loader *l);

#endif
