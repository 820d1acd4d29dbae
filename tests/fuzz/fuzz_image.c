/* libFuzzer: the PNG/JPEG decoders as prediction and training use them:
 * image_stream into the streaming resizer (two network inputs, mirrored,
 * keep_aspect, and a display copy) under a small memory budget, checked
 * against image_decode (the same rows, or the same failure), and
 * image_probe. The first byte picks the output sizes and flags; the rest is
 * the file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/budget.h"
#include "data/preprocess.h"
#include "io/image.h"

/* Small enough that one execution stays fast, large enough for real radiograph shapes. */
#define FUZZ_MAX_PIXELS (1u << 22)
#define FUZZ_BUDGET ((uint64_t)64 << 20)

typedef struct fsink {
  int w, h, rows, n_out;
  resize_out out[3];
  float *buf[5];
  resize_stream *rs;
  uint64_t hash;
} fsink;

static uint64_t f_cost(void *ctx, int w, int h) {
  fsink *f = ctx;
  return resize_stream_bytes(w, h, f->out, f->n_out);
}

static int f_begin(void *ctx, int w, int h, mskx_err *e) {
  fsink *f = ctx;
  f->w = w, f->h = h;
  return resize_stream_create(w, h, f->out, f->n_out, &f->rs, e);
}

static void f_row(void *ctx, const uint8_t *row) {
  fsink *f = ctx;
  resize_stream_row(f->rs, row);
  for (int x = 0; x < f->w; x++) f->hash = f->hash * 1099511628211ull ^ row[x];
  f->rows++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t opt = data[0];
  data++, size--;
  mem_budget *b = NULL;
  mskx_err e = {0, ""};
  if (mem_budget_create(FUZZ_BUDGET, 0, &b, &e)) return 0;
  image_limits lim = {FUZZ_MAX_PIXELS, b};
  int s1 = 1 + (opt & 31), s2 = 1 + ((opt >> 5) & 7) * 9;
  fsink f = {.n_out = 3};
  for (int i = 0; i < 5; i++) f.buf[i] = malloc(64 * 64 * sizeof(float));
  f.out[0] = (resize_out){.s = s1, .keep_aspect = opt & 1, .dst = f.buf[0], .dst_mirror = f.buf[1]};
  f.out[1] = (resize_out){.s = s2, .keep_aspect = !(opt & 1), .dst = f.buf[2], .dst_mirror = (opt & 2) ? f.buf[3] : NULL};
  f.out[2] = (resize_out){.s = 0, .w = 1 + (opt & 63), .h = 1 + (opt >> 2 & 63), .dst = f.buf[4]};
  image_sink sink = {f_cost, f_begin, f_row, &f};
  int rc = image_stream(data, size, "fuzz", &lim, &sink, &e);
  resize_stream_destroy(f.rs);
  if (mem_budget_used(b) != 0) __builtin_trap();   /* every take given back */
  /* Resized values are clamped into [0, 1]; a NaN or a stray value is a defect. */
  for (int i = 0; !rc && i < 3; i++) {
    int n = i < 2 ? s1 * s1 : s2 * s2;
    for (int q = 0; q < n; q++)
      if (!(f.buf[i][q] >= 0 && f.buf[i][q] <= 1)) __builtin_trap();
  }
  /* The whole-image decode agrees: same rows, or it fails too. */
  gray_image g = {0, 0, NULL};
  image_limits plain = {FUZZ_MAX_PIXELS, NULL};
  int rc2 = image_decode(data, size, "fuzz", &plain, &g, &e);
  if (!rc && !rc2) {
    uint64_t h = 0;
    for (size_t i = 0; i < (size_t)g.w * g.h; i++) h = h * 1099511628211ull ^ g.px[i];
    if (g.w != f.w || g.h != f.h || f.rows != f.h || h != f.hash) __builtin_trap();
  }
  gray_image_free(&g);
  int w, h;
  image_probe(data, size, "fuzz", &w, &h, &e);
  for (int i = 0; i < 5; i++) free(f.buf[i]);
  mem_budget_destroy(b);
  return 0;
}
