/* Memory-bound ops for CPU backends, written in C with OpenMP: batch norm
 * (with the ReLU fused and recomputed in backward), pools, copies, the tiny
 * classifier head and the loss. They read and write strided NHWC views, which
 * oneDNN's fast paths do not, and every reduction runs in a fixed order so a
 * run is bit-reproducible for a given thread count. The bf16 they write is
 * converted by bf16_cpu.h (vcvtneps2bf16 where the CPU has AVX512-BF16), and
 * the batch-norm backward ops also read a bf16 dy (view.bf16). Their parallel regions
 * take the calling thread's OpenMP thread count, which the entry points that
 * run ops set to the engine's for the call (engine_threads_enter). Semantics:
 * engine.h. */
#ifndef MSKX_ENGINE_KERNELS_CPU_H
#define MSKX_ENGINE_KERNELS_CPU_H
#include "engine/engine.h"

int cpu_linear_create(engine *eng, int n, int in, int out, linear_op **op, mskx_err *e);
void cpu_linear_destroy(linear_op *op);
int cpu_linear_forward(linear_op *op, const float *x, const float *w, const float *b, float *y, mskx_err *e);
int cpu_linear_backward(linear_op *op, const float *x, const float *dy, const float *w, float *dx, float *dw,
                        float *db, mskx_err *e);

/* The reductions (bn_forward_train, bn_backward, bn_stats, bn_backward_stats)
 * keep per-thread partial sums in scratch owned by the calling thread, grown
 * on demand (no allocation in steady state) and freed when that thread exits
 * or calls cpu_scratch_release (engine_destroy does, for the thread that
 * destroys an engine: the main thread never "exits" for pthreads'
 * destructors); they return MSKX_ENOMEM when it cannot be allocated. */
void cpu_scratch_release(void);
int cpu_bn_forward_train(view x, const float *gamma, const float *beta, float eps, int relu, view y, float *mean,
                         float *invstd, float *var_unbiased);
void cpu_bn_forward_infer(view x, const float *gamma, const float *beta, const float *rmean, const float *rvar,
                          float eps, int relu, view y);
void cpu_bn_forward_affine(view x, const float *scale, const float *shift, int relu, view y);
void cpu_bn_forward_affine_bf16(view x, const float *scale, const float *shift, int relu, uint16_t *y);
void cpu_bn_forward_affine_u8(view x, const float *scale, const float *shift, uint8_t *y);
int cpu_bn_backward(view x, view dy, const float *gamma, const float *beta, const float *mean, const float *invstd,
                    int relu, view dx, float *dgamma, float *dbeta);
int cpu_bn_stats(view x, const float *mean, double *out);
int cpu_bn_backward_stats(view x, view dy, const float *gamma, const float *beta, const float *mean,
                          const float *invstd, int relu, double *sums);
void cpu_bn_backward_dx(view x, view dy, const float *gamma, const float *beta, const float *mean,
                        const float *invstd, int relu, const double *sums, double count, view dx);
void cpu_bn_backward_dx_dense(view x, view dy, const float *gamma, const float *beta, const float *mean,
                              const float *invstd, int relu, const double *sums, double count, void *dx, int bf16);

void cpu_add_relu_forward(view a, view b, view y);
void cpu_add_relu_backward(view y, view dy, view da, view db);
void cpu_relu_forward(view x, view y);

void cpu_maxpool_forward(const pool_desc *d, view x, view y, int32_t *argmax);
void cpu_maxpool_backward(const pool_desc *d, view dy, const int32_t *argmax, view dx);
void cpu_avgpool_forward(const pool_desc *d, view x, view y);
void cpu_avgpool_backward(const pool_desc *d, view dy, view dx);
void cpu_gap_forward(view x, float *y);
void cpu_gap_backward(const float *dy, view dx);

void cpu_copy(view src, view dst);
void cpu_accumulate(view src, view dst);
double cpu_bce_logits(const float *z, const float *t, const float *w, int n, float *dz);

#endif
