/* Deterministic random numbers: xoshiro256** seeded through splitmix64.
 * rng_for(seed, a, b) derives an independent stream from a key (e.g. epoch and
 * sample index) so results never depend on thread count or call order. */
#ifndef MSKX_CORE_RNG_H
#define MSKX_CORE_RNG_H
#include <stdint.h>

typedef struct rng {
  uint64_t s[4];
} rng;

void rng_seed(rng *r, uint64_t seed);
/* A stream keyed by (seed, a, b). */
rng rng_for(uint64_t seed, uint64_t a, uint64_t b);
uint64_t rng_u64(rng *r);
/* Uniform in [0, 1). */
double rng_uniform(rng *r);
/* Uniform integer in [0, n). */
uint64_t rng_below(rng *r, uint64_t n);
/* Standard normal (Box-Muller). */
double rng_normal(rng *r);
/* Fisher-Yates shuffle of idx[0..n). */
void rng_shuffle(rng *r, int64_t *idx, int64_t n);

#endif
