/* A network on one batch given as files (see forward_file.h). */
#include "models/forward_file.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "models/model_file.h"

void forward_options_default(forward_options *o) {
  memset(o, 0, sizeof *o);
  o->prec = PREC_FP32;
  o->aux_weight = INCEPTION_AUX_WEIGHT;
  o->dropout = -1;
}

void nchw_to_nhwc(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, float *out) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t k = 0; k < c; k++)
      for (int64_t p = 0; p < h * w; p++) out[(i * h * w + p) * c + k] = x[(i * c + k) * h * w + p];
}

/* The input batch, checked for shape and size. */
static int read_input(const char *path, htensor *x, mskx_err *e) {
  int rc = npy_read_f32(path, x, e);
  if (!rc && (x->ndim != 4 || x->shape[1] != 3))
    rc = err_set(e, MSKX_ESHAPE, "%s: input must have shape (N, 3, H, W), got %s", path,
                 shape_str((char[64]){0}, 64, x->ndim, x->shape));
  if (!rc && (x->shape[0] > FORWARD_MAX_BATCH || x->shape[2] > FORWARD_MAX_SIDE || x->shape[3] > FORWARD_MAX_SIDE))
    rc = err_set(e, MSKX_ELIMIT, "%s: input shape too large", path);
  return rc;
}

static int read_target(const char *path, int n, htensor *y, mskx_err *e) {
  int rc = npy_read_f32(path, y, e);
  if (!rc && !(y->ndim == 2 && y->shape[0] == n && y->shape[1] == 1) && !(y->ndim == 1 && y->shape[0] == n))
    rc = err_set(e, MSKX_ESHAPE, "%s: target must have shape (%d, 1)", path, n);
  return rc;
}

/* Creates the network of o with its weights, planned for an n x h x w batch. */
static int load_net(const forward_options *o, int n, int h, int w, engine **eng, net **m, mskx_err *e) {
  st_file *wf = NULL;
  int rc = st_read(o->weights, &wf, e);
  /* Its I8 weights and scales would otherwise read as unexpected tensors. */
  if (!rc && model_file_is_quantised(wf))
    rc = err_set(e, MSKX_EUNSUPPORTED,
                 "%s is an int8 (quantised) model: forward takes fp32 weights (int8 plans are inference-only); "
                 "run it with predict, eval or serve (docs/quantize.md), or use the fp32 model it was made from",
                 o->weights);
  if (!rc) rc = engine_dnnl_create(o->threads, eng, e);
  if (!rc) rc = net_create(o->arch, *eng, 0, m, e);
  if (!rc) rc = net_load_tensors(*m, wf, o->weights, 0, e);
  if (!rc) rc = model_bn_eps_read(wf, o->weights, &(*m)->cx.bn_eps, e);
  if (!rc && arch_has_aux(&(*m)->arch)) {
    (*m)->aux_weight = (float)o->aux_weight;
    if (o->dropout >= 0) (*m)->dropout = (float)o->dropout;
  }
  if (!rc) rc = net_plan(*m, n, h, w, o->train, o->prec, e);
  st_free(wf);
  return rc;
}

/* The loss of the latest forward and, with grads, the parameter gradients written there. */
static int loss_and_grads(const forward_options *o, net *m, const float *logits, const float *y, int n,
                          const char *grads, double *loss, mskx_err *e) {
  float *dz = malloc((size_t)n * sizeof *dz);
  tensor_ref *gt = NULL;
  int ngt = 0;
  if (!dz) return err_set(e, MSKX_ENOMEM, "out of memory");
  *loss = net_loss(m, logits, y, NULL, n, dz);
  int rc = MSKX_OK;
  if (grads) rc = net_backward(m, dz, e);
  if (!rc && grads) rc = ps_as_tensors(&m->ps, 1, &gt, &ngt, e);
  if (!rc && grads) {
    st_meta meta[1] = {{"arch", (char *)o->arch}};
    rc = st_write(grads, gt, ngt, meta, 1, e);
  }
  free(gt);
  free(dz);
  return rc;
}

int forward_file_run(const forward_options *o, const char *input_npy, const char *target_npy, const char *output_npy,
                     const char *grads, double *loss, mskx_err *e) {
  if (loss) *loss = NAN;
  if (grads && !target_npy) return err_set(e, MSKX_EINVAL, "gradients need a target");
  if (grads && !o->train) return err_set(e, MSKX_EINVAL, "gradients need train mode");
  htensor x = {0}, y = {0};
  engine *eng = NULL;
  net *m = NULL;
  float *xin = NULL, *logits = NULL;
  int rc = read_input(input_npy, &x, e);
  int n = rc ? 0 : (int)x.shape[0];
  if (!rc && target_npy) rc = read_target(target_npy, n, &y, e);
  if (!rc) rc = load_net(o, n, (int)x.shape[2], (int)x.shape[3], &eng, &m, e);
  if (!rc && (!(xin = malloc((size_t)htensor_numel(&x) * sizeof *xin)) || !(logits = malloc((size_t)n * sizeof *logits))))
    rc = err_set(e, MSKX_ENOMEM, "out of memory");
  if (!rc) nchw_to_nhwc(x.data, x.shape[0], x.shape[1], x.shape[2], x.shape[3], xin);
  if (!rc) rc = net_forward(m, xin, logits, e);
  int64_t lshape[2] = {n, 1};
  if (!rc && output_npy) rc = npy_write_f32(output_npy, logits, 2, lshape, e);
  double l = NAN;
  if (!rc && target_npy) rc = loss_and_grads(o, m, logits, y.data, n, grads, &l, e);
  if (!rc && loss) *loss = l;
  free(logits);
  free(xin);
  net_destroy(m);
  engine_destroy(eng);
  htensor_release(&x);
  htensor_release(&y);
  return rc;
}
