/* A training step really optimises: repeated Adam steps on one fixed batch
 * halve the loss within 40 steps (the start of memorisation), for each model family. */
#include "engine/engine.h"
#include "models/net.h"
#include "core/rng.h"
#include "test.h"
#include "train/optim.h"

static double overfit(const char *arch, int size, int steps, precision prec, double *first) {
  mskx_err e = {0};
  engine *eng = NULL;
  net *m = NULL;
  optimizer *o = NULL;
  optim_config oc;
  const int n = 4;
  float x[4 * 64 * 64 * 3], y[4] = {0, 1, 1, 0}, z[4], dz[4];
  rng r = rng_for(7, 0, 0);
  for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = (float)rng_normal(&r);
  double loss = NAN;
  if (engine_dnnl_create(2, &eng, &e) || net_create(arch, eng, 1, &m, &e) ||
      net_plan(m, n, size, size, 1, prec, &e) || optim_config_defaults("adam", &oc, &e))
    goto out;
  oc.lr = 1e-3;
  if (optim_create(&oc, m->ps.n_params, &o, &e)) goto out;
  for (int s = 0; s < steps; s++) {
    if (net_forward(m, x, z, &e)) goto out;
    loss = eng->ops->bce_logits(z, y, NULL, n, dz);
    if (s == 0) *first = loss;
    if (net_backward(m, dz, &e)) goto out;
    optim_step(o, m->ps.params, m->ps.grads, oc.lr);
    net_params_changed(m);
  }
out:
  if (e.code) printf("# %s: %s\n", arch, e.msg);
  optim_destroy(o);
  net_destroy(m);
  engine_destroy(eng);
  return loss;
}

TEST(densenet_memorises_a_batch) {
  double first = 0, last = overfit("densenet:growth=8,blocks=2-2,init=16,bn_size=2", 64, 40, PREC_FP32, &first);
  printf("# densenet loss %.4f -> %.4f\n", first, last);
  CHECKF(last < 0.5 * first, "loss %.4f -> %.4f", first, last);
}

TEST(densenet_bf16_memorises_a_batch) {
  if (!engine_dnnl_has_bf16()) return;
  double first = 0, last = overfit("densenet:growth=8,blocks=2-2,init=16,bn_size=2", 64, 40, PREC_BF16, &first);
  printf("# densenet bf16 loss %.4f -> %.4f\n", first, last);
  CHECKF(last < 0.5 * first, "loss %.4f -> %.4f", first, last);
}

TEST_MAIN()
