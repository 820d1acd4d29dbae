/* Shared fixtures of the inference tests: tiny random models saved as model
 * files, tiny PNG radiographs, JSON bundle/ensemble files, and an
 * independent reference prediction (preprocess + one net_forward). */
#ifndef MSKX_TESTS_INFER_FIXTURES_H
#define MSKX_TESTS_INFER_FIXTURES_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/rng.h"
#include "core/util.h"
#include "data/preprocess.h"
#include "engine/engine.h"
#include "io/image.h"
#include "models/model_file.h"
#include "models/net.h"

#define TINY_ARCH "densenet:growth=8,blocks=2-2,init=8,bn_size=2"
#define TINY_ARCH2 "densenet:growth=4,blocks=1-2,init=8,bn_size=2"

static char fx_dir[512];

/* A fresh scratch folder per test program. */
static inline const char *fx_tmp(void) {
  if (!fx_dir[0]) {
    const char *base = getenv("MSKX_TMP");
    snprintf(fx_dir, sizeof fx_dir, "%s/infer.XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(fx_dir)) snprintf(fx_dir, sizeof fx_dir, "/tmp");
  }
  return fx_dir;
}

static inline const char *fx_path(char *buf, size_t n, const char *name) {
  snprintf(buf, n, "%s/%s", fx_tmp(), name);
  return buf;
}

/* A random model file. The BN running statistics and the head are perturbed
 * so that different inputs give clearly different probabilities;
 * transform_input (Inception-v3 only) is saved in the file. */
static inline int fx_make_model_ti(const char *path, const char *arch, uint64_t seed, int size, int keep_aspect,
                                   double threshold, int transform_input, mskx_err *e) {
  engine *eng = NULL;
  net *m = NULL;
  int rc = engine_dnnl_create(1, &eng, e);
  if (!rc) rc = net_create(arch, eng, seed, &m, e);
  if (!rc && transform_input) rc = net_set_transform_input(m, 1, e);
  if (!rc) {
    rng r;
    rng_seed(&r, seed * 7919 + 1);
    for (int i = 0; i < m->ps.n; i++) {
      const param_entry *en = &m->ps.entries[i];
      float *d = ps_data(&m->ps, i);
      int is_var = strstr(en->name, "running_var") != NULL, is_mean = strstr(en->name, "running_mean") != NULL;
      for (size_t k = 0; d && k < en->numel; k++) {
        if (is_var) d[k] = (float)(0.5 + rng_uniform(&r));
        else if (is_mean) d[k] = (float)(0.2 * rng_normal(&r));
        else if (i == m->head_w) d[k] = (float)(2.0 * rng_normal(&r));
        else if (i == m->head_b) d[k] = (float)(0.3 * rng_normal(&r));
      }
    }
    model_meta meta;
    model_meta_default(&meta);
    snprintf(meta.arch, sizeof meta.arch, "%s", arch);
    meta.size = size;
    meta.keep_aspect = keep_aspect;
    meta.threshold = threshold;
    /* Non-NULL empty arrays: model_save memcpy's them even when empty. */
    tensor_ref no_t[1];
    st_meta no_m[1];
    rc = model_save(path, m, &meta, no_t, 0, no_m, 0, e);
  }
  net_destroy(m);
  engine_destroy(eng);
  return rc;
}

static inline int fx_make_model(const char *path, const char *arch, uint64_t seed, int size, int keep_aspect,
                                double threshold, mskx_err *e) {
  return fx_make_model_ti(path, arch, seed, size, keep_aspect, threshold, 0, e);
}

/* A w x h test image: smooth gradients plus a bright blob at a seed-dependent spot. */
static inline gray_image fx_image(int w, int h, uint64_t seed) {
  gray_image g = {w, h, malloc((size_t)w * h)};
  rng r;
  rng_seed(&r, seed);
  double cx = rng_uniform(&r) * w, cy = rng_uniform(&r) * h, rad = 0.15 * (w + h) + 1;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      double v = 40 + 60.0 * x / w + 30.0 * y / h + 20 * rng_uniform(&r);
      double d2 = ((x - cx) * (x - cx) + (y - cy) * (y - cy)) / (rad * rad);
      v += 120 * exp(-d2);
      g.px[(size_t)y * w + x] = (uint8_t)(v > 255 ? 255 : v);
    }
  return g;
}

static inline gray_image fx_mirror(const gray_image *g) {
  gray_image m = {g->w, g->h, malloc((size_t)g->w * g->h)};
  for (int y = 0; y < g->h; y++)
    for (int x = 0; x < g->w; x++) m.px[(size_t)y * g->w + x] = g->px[(size_t)y * g->w + g->w - 1 - x];
  return m;
}

static inline int fx_write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs(text, f);
  return fclose(f);
}

/* Two tiny models of different archs and sizes (a: TINY_ARCH at 64 px,
 * threshold 0.5; b: TINY_ARCH2 at 32 px, 0.3) and a bundle routing wrists to
 * a and elbows to b, in the fixture folder; their paths into the buffers
 * (FX_PATH_MAX bytes each). Nonzero on failure. */
#define FX_PATH_MAX 600
static inline int fx_make_pair_and_bundle(char *a, char *b, char *bundle, mskx_err *e) {
  return fx_make_model(fx_path(a, FX_PATH_MAX, "a.safetensors"), TINY_ARCH, 11, 64, 0, 0.5, e) ||
         fx_make_model(fx_path(b, FX_PATH_MAX, "b.safetensors"), TINY_ARCH2, 22, 32, 0, 0.3, e) ||
         fx_write_text(fx_path(bundle, FX_PATH_MAX, "bundle.json"),
                       "{\"format\": \"mskx-bundle-1\", \"models\": {\"XR_WRIST\": \"a.safetensors\", "
                       "\"XR_ELBOW\": \"b.safetensors\"}}");
}

/* The reference: model_load on its own engine, preprocess, batch-1 forward. */
typedef struct fx_ref {
  engine *eng;
  net *m;
  model_meta meta;
} fx_ref;

static inline int fx_ref_open(fx_ref *r, const char *path, mskx_err *e) {
  memset(r, 0, sizeof *r);
  int rc = engine_dnnl_create(1, &r->eng, e);
  if (!rc) rc = model_load(path, r->eng, &r->m, &r->meta, NULL, e);
  return rc;
}

static inline void fx_ref_close(fx_ref *r) {
  net_destroy(r->m);
  engine_destroy(r->eng);
}

/* P(abnormal) of one image; the features of this forward stay in r->m. */
static inline int fx_ref_prob(fx_ref *r, const gray_image *g, double *p, mskx_err *e) {
  int s = r->meta.size;
  float *gray = malloc((size_t)s * s * sizeof(float)), *x = malloc((size_t)s * s * 3 * sizeof(float)), z = 0;
  int rc = resize_gray(g, s, r->meta.keep_aspect, gray, e);
  if (!rc) {
    normalize_to_hwc3(gray, s, &r->meta.norm, x);
    rc = net_plan(r->m, 1, s, s, 0, PREC_FP32, e);
  }
  if (!rc) rc = net_forward(r->m, x, &z, e);
  *p = 1.0 / (1.0 + exp(-(double)z));
  free(gray);
  free(x);
  return rc;
}

#endif
