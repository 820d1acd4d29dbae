/* Percentile bootstrap primitives used by metrics_evaluate (bootstrap.c);
 * exposed so that tests can check the resampling itself. */
#ifndef MSKX_EVAL_BOOTSTRAP_H
#define MSKX_EVAL_BOOTSTRAP_H
#include "core/rng.h"

/* Lower and upper percentiles of the 95% interval. */
#define BOOT_CI_LO_PCT 2.5
#define BOOT_CI_HI_PCT 97.5

/* One stratum's resample: m draws with replacement from members[0..m),
 * each adding 1 to count[member]. Counts of other studies are untouched, so
 * drawing every stratum in turn keeps each stratum's total fixed. */
void bootstrap_draw(rng *r, const int *members, int m, int *count);

/* The random stream of resample b, stratum p: independent of thread count
 * and of the order in which resamples are computed. */
rng bootstrap_stream(uint64_t seed, int b, int p);

/* 95% percentile interval of vals[0..n): NaN entries (resamples where the
 * metric is undefined) are dropped and counted in *n_undefined; the rest are
 * sorted in place (vals is reordered) and interpolated linearly
 * (percentile_linear). lo = hi = NaN when no value is defined. */
void bootstrap_ci(double *vals, int n, double *lo, double *hi, int *n_undefined);

#endif
