/* mskx forward: runs a network on an .npy batch; the interface the PyTorch
 * parity checks and debugging rely on. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "core/error.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "models/model_file.h"
#include "models/net.h"

static const char *const usage =
    "usage: mskx forward --arch ARCH --weights W.safetensors --input X.npy [options]\n"
    "\n"
    "Runs the network on X (float32, shape (N,3,H,W), C order, already normalised)\n"
    "and writes the logits; with --target, also the loss and every parameter gradient.\n"
    "\n"
    "  --arch ARCH          one of the architectures below\n"
    "  --weights FILE       safetensors with torchvision names (all parameters and buffers);\n"
    "                       its metadata 'bn_eps' (set by mskx import from Keras) is honoured\n"
    "                       metadata transform_input=1 turns on Inception-v3's transform_input\n"
    "  --input X.npy        input batch\n"
    "  --mode eval|train    batch norm with running (eval, default) or batch statistics (train)\n"
    "  --precision fp32|bf16  compute precision (default fp32)\n"
    "  --output FILE.npy    logits, float32 (N,1)\n"
    "  --target Y.npy       float32 (N,1) of 0/1: prints 'loss <value>' (mean BCE with logits;\n"
    "                       inception_v3 in train mode adds W x the auxiliary head's)\n"
    "  --dropout P          inception_v3, train mode: dropout before fc (default 0.5, as\n"
    "                       torchvision; 0 for comparisons with a reference)\n"
    "  --aux-weight W       inception_v3, train mode: auxiliary loss weight (default 0.4; 0: no\n"
    "                       auxiliary head, which allows inputs under 299x299)\n"
    "  --grads FILE         with --target: gradients of the loss by parameter name (safetensors);\n"
    "                       needs --mode train\n"
    "  --threads N          compute threads (default: all cores), pinned one per CPU\n"
    "                       (MSKX_PIN=0 or OMP_PROC_BIND turns pinning off)\n";

typedef struct fwd_opts {
  const char *arch, *weights, *input, *output, *target, *grads;
  int train, threads;
  double aux_weight, dropout;
  precision prec;
} fwd_opts;

static int parse(int argc, char **argv, fwd_opts *o) {
  static const struct option longs[] = {{"arch", 1, 0, 'a'},      {"weights", 1, 0, 'w'}, {"input", 1, 0, 'i'},
                                        {"mode", 1, 0, 'm'},      {"precision", 1, 0, 'p'}, {"output", 1, 0, 'o'},
                                        {"target", 1, 0, 't'},    {"grads", 1, 0, 'g'},   {"threads", 1, 0, 'T'},
                                        {"aux-weight", 1, 0, 'x'}, {"dropout", 1, 0, 'd'},
                                        {"help", 0, 0, 'h'},      {0, 0, 0, 0}};
  memset(o, 0, sizeof *o);
  o->aux_weight = INCEPTION_AUX_WEIGHT;
  o->dropout = -1;
  int c;
  long v;
  int bf16;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    switch (c) {
      case 'a': o->arch = optarg; break;
      case 'w': o->weights = optarg; break;
      case 'i': o->input = optarg; break;
      case 'o': o->output = optarg; break;
      case 't': o->target = optarg; break;
      case 'g': o->grads = optarg; break;
      case 'm':
        if (cli_parse_choice("forward", "mode", optarg, "eval", "train", &o->train)) return CLI_EXIT_USAGE;
        break;
      case 'p':
        if (cli_parse_choice("forward", "precision", optarg, "fp32", "bf16", &bf16)) return CLI_EXIT_USAGE;
        o->prec = bf16 ? PREC_BF16 : PREC_FP32;
        break;
      case 'T':
        if (cli_parse_int("forward", "threads", optarg, 1, 1024, &v)) return CLI_EXIT_USAGE;
        o->threads = (int)v;
        break;
      case 'x':
        if (cli_parse_double("forward", "aux-weight", optarg, 0, 100, &o->aux_weight)) return CLI_EXIT_USAGE;
        break;
      case 'd':
        if (cli_parse_double("forward", "dropout", optarg, 0, 0.999, &o->dropout)) return CLI_EXIT_USAGE;
        break;
      case 'h':
        fputs(usage, stdout);
        cli_print_archs(stdout, 0);
        return -1;
      default: return cli_usage_error("forward");
    }
  }
  if (optind < argc) return cli_usage_errorf("forward", "unexpected argument '%s'", argv[optind]);
  if (!o->arch || !o->weights || !o->input) return cli_usage_errorf("forward", "--arch, --weights and --input are required");
  if (o->grads && !o->target) return cli_usage_errorf("forward", "--grads needs --target");
  if (o->grads && !o->train) return cli_usage_errorf("forward", "--grads needs --mode train");
  return 0;
}

/* (N,3,H,W) -> (N,H,W,3). */
static float *to_nhwc(const htensor *x) {
  int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], w = x->shape[3];
  float *out = malloc((size_t)(n * c * h * w) * sizeof(float));
  if (!out) return NULL;
  for (int64_t i = 0; i < n; i++)
    for (int64_t k = 0; k < c; k++)
      for (int64_t p = 0; p < h * w; p++) out[(i * h * w + p) * c + k] = x->data[(i * c + k) * h * w + p];
  return out;
}

static int run_forward(const fwd_opts *o, mskx_err *e) {
  htensor x = {0}, y = {0};
  st_file *wf = NULL;
  engine *eng = NULL;
  net *m = NULL;
  float *xin = NULL, *logits = NULL, *dz = NULL;
  tensor_ref *gt = NULL;
  int ngt = 0;
  int rc = npy_read_f32(o->input, &x, e);
  if (!rc && (x.ndim != 4 || x.shape[1] != 3))
    rc = err_set(e, MSKX_ESHAPE, "%s: input must have shape (N, 3, H, W), got %s", o->input,
                 shape_str((char[64]){0}, 64, x.ndim, x.shape));
  if (!rc && (x.shape[0] > 4096 || x.shape[2] > 8192 || x.shape[3] > 8192))
    rc = err_set(e, MSKX_ELIMIT, "%s: input shape too large", o->input);
  int n = rc ? 0 : (int)x.shape[0];
  if (!rc && o->target) {
    rc = npy_read_f32(o->target, &y, e);
    if (!rc && !(y.ndim == 2 && y.shape[0] == n && y.shape[1] == 1) && !(y.ndim == 1 && y.shape[0] == n))
      rc = err_set(e, MSKX_ESHAPE, "%s: target must have shape (%d, 1)", o->target, n);
  }
  if (!rc) rc = st_read(o->weights, &wf, e);
  if (!rc) rc = engine_dnnl_create(o->threads, &eng, e);
  if (!rc) rc = net_create(o->arch, eng, 0, &m, e);
  if (!rc) rc = net_load_tensors(m, wf, o->weights, 0, e);
  if (!rc) rc = model_bn_eps_read(wf, o->weights, &m->cx.bn_eps, e);
  if (!rc && arch_has_aux(&m->arch)) {
    m->aux_weight = (float)o->aux_weight;
    if (o->dropout >= 0) m->dropout = (float)o->dropout;
  }
  if (!rc) rc = net_plan(m, n, (int)x.shape[2], (int)x.shape[3], o->train, o->prec, e);
  if (!rc && !(xin = to_nhwc(&x))) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  if (!rc && !(logits = malloc((size_t)n * sizeof(float)))) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  if (!rc) rc = net_forward(m, xin, logits, e);
  int64_t lshape[2] = {n, 1};
  if (!rc && o->output) rc = npy_write_f32(o->output, logits, 2, lshape, e);
  if (!rc && o->target) {
    if (!(dz = malloc((size_t)n * sizeof(float)))) rc = err_set(e, MSKX_ENOMEM, "out of memory");
    if (!rc) {
      double loss = net_loss(m, logits, y.data, NULL, n, dz);
      printf("loss %.9g\n", loss);
    }
    if (!rc && o->grads) rc = net_backward(m, dz, e);
    if (!rc && o->grads) rc = ps_as_tensors(&m->ps, 1, &gt, &ngt, e);
    if (!rc && o->grads) {
      st_meta meta[1] = {{"arch", (char *)o->arch}};
      rc = st_write(o->grads, gt, ngt, meta, 1, e);
    }
  }
  free(gt);
  free(dz);
  free(logits);
  free(xin);
  net_destroy(m);
  engine_destroy(eng);
  st_free(wf);
  htensor_release(&x);
  htensor_release(&y);
  return rc;
}

int cmd_forward(int argc, char **argv) {
  fwd_opts o;
  int rc = parse(argc, argv, &o);
  if (rc) return rc < 0 ? 0 : rc;
  mskx_err e = {0};
  cli_pin_threads(o.threads);
  if (run_forward(&o, &e)) return cli_error("forward", &e);
  return 0;
}
