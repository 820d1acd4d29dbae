/* Cairo figures for the evaluation report (see plots.h). Every chart shares
 * one frame: title, ticks on "nice" 1-2-5 steps, light grid, axis labels. */
#include "eval/plots.h"
#include <cairo.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"

/* Okabe-Ito's colour-blind-safe set, its yellow (unreadable on white) replaced by a dark violet. */
const uint32_t plot_palette[8] = {0x0072b2, 0xe69f00, 0x009e73, 0xd55e00, 0xcc79a7, 0x56b4e9, 0x5e3c99, 0x7f7f7f};

#define FONT "DejaVu Sans"
#define GRID_RGB 0xe6e8ecu
#define AXIS_RGB 0x8a92a0u
#define MUTED_RGB 0x5b6475u

void png_buf_free(png_buf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

static void rgb(cairo_t *cr, uint32_t c, double a) {
  cairo_set_source_rgba(cr, ((c >> 16) & 255) / 255.0, ((c >> 8) & 255) / 255.0, (c & 255) / 255.0, a);
}

typedef struct sink {
  unsigned char *data;
  size_t len, cap;
  int failed;
} sink;

static cairo_status_t sink_write(void *closure, const unsigned char *data, unsigned int len) {
  sink *s = closure;
  if (s->len + len > s->cap) {
    size_t cap = s->cap ? s->cap : 16384;
    while (cap < s->len + len) cap *= 2;
    unsigned char *d = realloc(s->data, cap);
    if (!d) {
      s->failed = 1;
      return CAIRO_STATUS_WRITE_ERROR;
    }
    s->data = d;
    s->cap = cap;
  }
  memcpy(s->data + s->len, data, len);
  s->len += len;
  return CAIRO_STATUS_SUCCESS;
}

static int surface_to_png(cairo_surface_t *sf, int css_w, int css_h, png_buf *out, mskx_err *e) {
  sink s = {0};
  cairo_surface_flush(sf);
  cairo_status_t st = cairo_surface_write_to_png_stream(sf, sink_write, &s);
  if (st != CAIRO_STATUS_SUCCESS || s.failed) {
    free(s.data);
    return err_set(e, s.failed ? MSKX_ENOMEM : MSKX_EINTERNAL, "cairo: cannot encode PNG: %s",
                   cairo_status_to_string(st));
  }
  *out = (png_buf){s.data, s.len, css_w, css_h};
  return MSKX_OK;
}

/* A surface at PLOT_SCALE with a white background; the context draws in CSS pixels. */
static int canvas(int w, int h, cairo_surface_t **sf, cairo_t **cr, mskx_err *e) {
  if (w < 50 || h < 50 || w > 4000 || h > 4000) return err_set(e, MSKX_EINVAL, "plot size %dx%d out of range", w, h);
  *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w * PLOT_SCALE, h * PLOT_SCALE);
  *cr = cairo_create(*sf);
  if (cairo_status(*cr) != CAIRO_STATUS_SUCCESS) {
    cairo_destroy(*cr);
    cairo_surface_destroy(*sf);
    return err_set(e, MSKX_ENOMEM, "cairo: cannot create a %dx%d surface", w, h);
  }
  cairo_scale(*cr, PLOT_SCALE, PLOT_SCALE);
  rgb(*cr, 0xffffff, 1);
  cairo_paint(*cr);
  cairo_font_options_t *fo = cairo_font_options_create();
  cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
  cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
  cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
  cairo_set_font_options(*cr, fo);
  cairo_font_options_destroy(fo);
  return MSKX_OK;
}

static int finish(cairo_surface_t *sf, cairo_t *cr, int w, int h, png_buf *out, mskx_err *e) {
  int rc = cairo_status(cr) == CAIRO_STATUS_SUCCESS
               ? surface_to_png(sf, w, h, out, e)
               : err_set(e, MSKX_EINTERNAL, "cairo: %s", cairo_status_to_string(cairo_status(cr)));
  cairo_destroy(cr);
  cairo_surface_destroy(sf);
  return rc;
}

/* Text anchored at (x, y): ax 0 left, 0.5 centre, 1 right; ay 0 top, 0.5
 * middle, 1 bottom of the capitals (DejaVu's cap height is 0.73 em). */
static void text(cairo_t *cr, const char *s, double x, double y, double size, int bold, double ax, double ay,
                 uint32_t colour) {
  cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
  cairo_text_extents_t te;
  cairo_text_extents(cr, s, &te);
  rgb(cr, colour, 1);
  cairo_move_to(cr, x - ax * te.x_advance, y + (1 - ay) * 0.73 * size);
  cairo_show_text(cr, s);
}

static double text_width(cairo_t *cr, const char *s, double size) {
  cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
  cairo_text_extents_t te;
  cairo_text_extents(cr, s, &te);
  return te.x_advance;
}

/* ---- frame and ticks ---- */

typedef struct frame {
  double x, y, w, h; /* plot area in CSS pixels */
  double xmin, xmax, ymin, ymax;
} frame;

static double fx(const frame *f, double v) { return f->x + (v - f->xmin) / (f->xmax - f->xmin) * f->w; }
static double fy(const frame *f, double v) { return f->y + f->h - (v - f->ymin) / (f->ymax - f->ymin) * f->h; }

static double nice_step(double range, int target, int integer) {
  double raw = range / target, mag = pow(10, floor(log10(raw))), r = raw / mag;
  double step = (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
  return integer && step < 1 ? 1 : step;
}

/* Decimals from the step; negative values with a true minus sign (U+2212). */
static void tick_label(char *buf, size_t n, double v, double step) {
  int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
  if (fabs(v) < step * 1e-9) v = 0;
  snprintf(buf, n, "%s%.*f", v < 0 ? "\xe2\x88\x92" : "", dec, fabs(v));
}

static void draw_frame(cairo_t *cr, const frame *f, const plot_spec *s, int xticks, int yticks) {
  char b[32];
  cairo_set_line_width(cr, 1);
  double xs = nice_step(f->xmax - f->xmin, xticks, s->integer_x), ys = nice_step(f->ymax - f->ymin, yticks, 0);
  for (double v = ceil(f->xmin / xs - 1e-9) * xs; v <= f->xmax + xs * 1e-9; v += xs) {
    double X = fx(f, v);
    rgb(cr, GRID_RGB, 1);
    cairo_move_to(cr, X, f->y);
    cairo_line_to(cr, X, f->y + f->h);
    cairo_stroke(cr);
    tick_label(b, sizeof b, v, xs);
    text(cr, b, X, f->y + f->h + 6, 10.5, 0, 0.5, 0, MUTED_RGB);
  }
  for (double v = ceil(f->ymin / ys - 1e-9) * ys; v <= f->ymax + ys * 1e-9; v += ys) {
    double Y = fy(f, v);
    rgb(cr, GRID_RGB, 1);
    cairo_move_to(cr, f->x, Y);
    cairo_line_to(cr, f->x + f->w, Y);
    cairo_stroke(cr);
    tick_label(b, sizeof b, v, ys);
    text(cr, b, f->x - 6, Y, 10.5, 0, 1, 0.5, MUTED_RGB);
  }
  rgb(cr, AXIS_RGB, 1);
  cairo_move_to(cr, f->x, f->y);
  cairo_line_to(cr, f->x, f->y + f->h);
  cairo_line_to(cr, f->x + f->w, f->y + f->h);
  cairo_stroke(cr);
  if (s->title) text(cr, s->title, 12, 10, 13, 1, 0, 0, PLOT_INK);
  if (s->xlabel) text(cr, s->xlabel, f->x + f->w / 2, f->y + f->h + 24, 11.5, 0, 0.5, 0, PLOT_INK);
  if (s->ylabel) {
    cairo_save(cr);
    cairo_translate(cr, 14, f->y + f->h / 2);
    cairo_rotate(cr, -M_PI / 2);
    text(cr, s->ylabel, 0, 0, 11.5, 0, 0.5, 0.5, PLOT_INK);
    cairo_restore(cr);
  }
}

static void stroke_series(cairo_t *cr, const frame *f, const plot_series *p) {
  double w = p->width > 0 ? p->width : 1.75;
  cairo_save(cr);
  cairo_rectangle(cr, f->x - 4, f->y - 4, f->w + 8, f->h + 8);
  cairo_clip(cr);
  rgb(cr, p->rgb, 1);
  cairo_set_line_width(cr, w);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  double dash[2] = {5, 4};
  cairo_set_dash(cr, dash, p->dashed ? 2 : 0, 0);
  int pen = 0;
  for (int i = 0; i < p->n; i++) {
    if (!isfinite(p->x[i]) || !isfinite(p->y[i])) {
      pen = 0;
      continue;
    }
    if (pen) cairo_line_to(cr, fx(f, p->x[i]), fy(f, p->y[i]));
    else cairo_move_to(cr, fx(f, p->x[i]), fy(f, p->y[i]));
    pen = 1;
  }
  cairo_stroke(cr);
  cairo_set_dash(cr, dash, 0, 0);
  for (int i = 0; p->markers && i < p->n; i++) {
    if (!isfinite(p->x[i]) || !isfinite(p->y[i])) continue;
    cairo_arc(cr, fx(f, p->x[i]), fy(f, p->y[i]), w + 1.5, 0, 2 * M_PI);
    cairo_fill(cr);
  }
  cairo_restore(cr);
}

/* Legend entries: a line sample (or a marker when marker != 0) and a label. */
typedef struct legend_entry {
  const char *label;
  uint32_t rgb;
  int dashed, marker; /* marker: 0 line, 1 dot, 2 diamond, 3 ring */
  double width;
} legend_entry;

static void draw_marker(cairo_t *cr, int kind, double x, double y, double r, uint32_t c) {
  cairo_new_path(cr); /* text leaves a current point that arcs would join */
  rgb(cr, c, 1);
  if (kind == 2) {
    cairo_move_to(cr, x, y - r * 1.25);
    cairo_line_to(cr, x + r * 1.25, y);
    cairo_line_to(cr, x, y + r * 1.25);
    cairo_line_to(cr, x - r * 1.25, y);
    cairo_close_path(cr);
    cairo_fill(cr);
  } else if (kind == 3) {
    cairo_set_line_width(cr, 1.5);
    cairo_arc(cr, x, y, r, 0, 2 * M_PI);
    cairo_stroke(cr);
  } else {
    cairo_arc(cr, x, y, r, 0, 2 * M_PI);
    cairo_fill(cr);
  }
}

#define LEGEND_ROW 16.0
#define LEGEND_PAD 8.0

static void legend_size(cairo_t *cr, const legend_entry *le, int n, double *w, double *h) {
  double wmax = 0;
  for (int i = 0; i < n; i++) wmax = fmax(wmax, text_width(cr, le[i].label, 10.5));
  *w = wmax + 34 + LEGEND_PAD;
  *h = n * LEGEND_ROW + LEGEND_PAD;
}

/* Samples of the series (points and points along segments) inside a box. */
static int covered(const frame *f, const plot_series *s, int n, double x, double y, double w, double h) {
  int hits = 0;
  for (int k = 0; k < n; k++)
    for (int i = 0; i < s[k].n; i++) {
      int steps = i + 1 < s[k].n ? 12 : 1;
      for (int t = 0; t < steps; t++) {
        double a = (double)t / steps, px = s[k].x[i], py = s[k].y[i];
        if (t) px += a * (s[k].x[i + 1] - px), py += a * (s[k].y[i + 1] - py);
        double X = fx(f, px), Y = fy(f, py);
        hits += isfinite(X) && isfinite(Y) && X >= x - 4 && X <= x + w + 4 && Y >= y - 4 && Y <= y + h + 4;
      }
    }
  return hits;
}

/* The frame corner where the legend hides the fewest data; ties go to the
 * preferred corner (top right with top, else bottom right). */
static void legend_place(cairo_t *cr, const frame *f, const legend_entry *le, int nl, const plot_series *s, int n,
                         int top, double *x, double *y) {
  double w, h;
  legend_size(cr, le, nl, &w, &h);
  double xs[4] = {f->x + f->w - w - 8, f->x + f->w - w - 8, f->x + 8, f->x + 8};
  double ys[4] = {f->y + 8, f->y + f->h - h - 8, f->y + 8, f->y + f->h - h - 8};
  int order[4] = {top ? 0 : 1, top ? 1 : 0, top ? 2 : 3, top ? 3 : 2}, best = order[0], bh = -1;
  for (int k = 0; k < 4; k++) {
    int c = covered(f, s, n, xs[order[k]], ys[order[k]], w, h);
    if (bh < 0 || c < bh) bh = c, best = order[k];
  }
  *x = xs[best];
  *y = ys[best];
}

static void draw_legend(cairo_t *cr, const legend_entry *le, int n, double x, double y) {
  double bw, bh, row = LEGEND_ROW, pad = LEGEND_PAD;
  legend_size(cr, le, n, &bw, &bh);
  rgb(cr, 0xffffff, 0.88);
  cairo_rectangle(cr, x, y, bw, bh);
  cairo_fill_preserve(cr);
  rgb(cr, GRID_RGB, 1);
  cairo_set_line_width(cr, 1);
  cairo_stroke(cr);
  for (int i = 0; i < n; i++) {
    double cy = y + pad / 2 + row * i + row / 2;
    if (le[i].marker) {
      draw_marker(cr, le[i].marker, x + 15, cy, 3.5, le[i].rgb);
    } else {
      double dash[2] = {5, 4};
      rgb(cr, le[i].rgb, 1);
      cairo_set_line_width(cr, le[i].width > 0 ? le[i].width : 1.75);
      cairo_set_dash(cr, dash, le[i].dashed ? 2 : 0, 0);
      cairo_move_to(cr, x + 6, cy);
      cairo_line_to(cr, x + 24, cy);
      cairo_stroke(cr);
      cairo_set_dash(cr, dash, 0, 0);
    }
    text(cr, le[i].label, x + 30, cy, 10.5, 0, 0, 0.5, PLOT_INK);
  }
}

static frame make_frame(const plot_spec *s, double bottom_extra) {
  frame f = {58, 34, s->width - 58 - 16, s->height - 34 - 46 - bottom_extra, s->xmin, s->xmax, s->ymin, s->ymax};
  return f;
}

int plot_lines(const plot_spec *s, const plot_series *series, int n, png_buf *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  if (!(s->xmax > s->xmin) || !(s->ymax > s->ymin)) return err_set(e, MSKX_EINVAL, "plot: empty axis range");
  cairo_surface_t *sf;
  cairo_t *cr;
  int rc = canvas(s->width, s->height, &sf, &cr, e);
  if (rc) return rc;
  frame f = make_frame(s, 0);
  draw_frame(cr, &f, s, s->integer_x ? 6 : 5, 5);
  if (s->diagonal) {
    double d[2] = {s->xmin, s->xmax};
    plot_series diag = {d, d, 2, NULL, AXIS_RGB, 1, 1, 0};
    stroke_series(cr, &f, &diag);
  }
  legend_entry le[16];
  int nl = 0;
  for (int i = 0; i < n; i++) {
    stroke_series(cr, &f, &series[i]);
    if (series[i].label && nl < 16)
      le[nl++] = (legend_entry){series[i].label, series[i].rgb, series[i].dashed, 0, series[i].width};
  }
  if (nl) {
    double lx, ly;
    legend_place(cr, &f, le, nl, series, n, s->legend_top, &lx, &ly);
    draw_legend(cr, le, nl, lx, ly);
  }
  return finish(sf, cr, s->width, s->height, out, e);
}

int plot_reliability(const plot_spec *s, const double *mean_pred, const double *frac_pos, const int *count, int bins,
                     png_buf *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  if (bins < 1 || bins > 100) return err_set(e, MSKX_EINVAL, "plot: %d bins", bins);
  cairo_surface_t *sf;
  cairo_t *cr;
  int rc = canvas(s->width, s->height, &sf, &cr, e);
  if (rc) return rc;
  double bars_h = floor((s->height - 80) * 0.28);
  plot_spec top = *s;
  top.xlabel = NULL;
  top.xmin = top.ymin = 0;
  top.xmax = top.ymax = 1;
  frame f = make_frame(&top, bars_h + 10);
  f.h += 20; /* no x label under the top panel */
  draw_frame(cr, &f, &top, 5, 5);
  double d[2] = {0, 1};
  plot_series diag = {d, d, 2, NULL, AXIS_RGB, 1, 1, 0};
  stroke_series(cr, &f, &diag);
  double *xs = malloc(bins * sizeof *xs), *ys = malloc(bins * sizeof *ys);
  int k = 0, cmax = 1;
  for (int b = 0; xs && ys && b < bins; b++) {
    cmax = count[b] > cmax ? count[b] : cmax;
    if (count[b] > 0) xs[k] = mean_pred[b], ys[k++] = frac_pos[b];
  }
  plot_series curve = {xs, ys, xs && ys ? k : 0, "observed", plot_palette[0], 2, 0, 1};
  stroke_series(cr, &f, &curve);
  legend_entry le[2] = {{"observed", plot_palette[0], 0, 0, 2}, {"perfect calibration", AXIS_RGB, 1, 0, 1}};
  plot_series both[2] = {curve, diag};
  double lx, ly;
  legend_place(cr, &f, le, 2, both, 2, 0, &lx, &ly);
  draw_legend(cr, le, 2, lx, ly);
  free(xs);
  free(ys);
  /* Counts below, on the same x scale. */
  frame g = {f.x, f.y + f.h + 14, f.w, bars_h - 14, 0, 1, 0, cmax * 1.18};
  rgb(cr, AXIS_RGB, 1);
  cairo_set_line_width(cr, 1);
  cairo_move_to(cr, g.x, g.y + g.h);
  cairo_line_to(cr, g.x + g.w, g.y + g.h);
  cairo_stroke(cr);
  char b[32];
  for (int i = 0; i < bins; i++) {
    double x0 = fx(&g, (double)i / bins) + 1.5, x1 = fx(&g, (double)(i + 1) / bins) - 1.5, y = fy(&g, count[i]);
    rgb(cr, plot_palette[5], 0.75);
    cairo_rectangle(cr, x0, y, x1 - x0, g.y + g.h - y);
    cairo_fill(cr);
    snprintf(b, sizeof b, "%d", count[i]);
    text(cr, b, (x0 + x1) / 2, y - 2, 9.5, 0, 0.5, 1, MUTED_RGB);
  }
  for (int i = 0; i <= 5; i++) {
    snprintf(b, sizeof b, "%.1f", i / 5.0);
    text(cr, b, fx(&g, i / 5.0), g.y + g.h + 5, 10.5, 0, 0.5, 0, MUTED_RGB);
  }
  text(cr, "studies", g.x - 6, g.y + g.h / 2, 10.5, 0, 1, 0.5, MUTED_RGB);
  if (s->xlabel) text(cr, s->xlabel, g.x + g.w / 2, g.y + g.h + 21, 11.5, 0, 0.5, 0, PLOT_INK);
  return finish(sf, cr, s->width, s->height, out, e);
}

int plot_kappa(const plot_spec *s, const plot_kappa_row *rows, int n, const char *const *ref_labels,
               const uint32_t *ref_rgb, int n_refs, png_buf *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  if (n < 1 || n_refs < 0 || n_refs > PLOT_MAX_REFS) return err_set(e, MSKX_EINVAL, "plot: bad kappa rows");
  cairo_surface_t *sf;
  cairo_t *cr;
  int rc = canvas(s->width, s->height, &sf, &cr, e);
  if (rc) return rc;
  double lo = 0;
  for (int i = 0; i < n; i++) {
    if (isfinite(rows[i].lo)) lo = fmin(lo, rows[i].lo);
    if (isfinite(rows[i].value)) lo = fmin(lo, rows[i].value);
  }
  lo = floor(lo * 5) / 5;
  frame f = {112, 34, s->width - 112 - 16, s->height - 34 - 46, lo, 1, 0, n};
  /* x grid and labels only: the rows replace the y axis. */
  char b[32];
  double xs = nice_step(1 - lo, 6, 0);
  cairo_set_line_width(cr, 1);
  for (double v = ceil(lo / xs - 1e-9) * xs; v <= 1 + 1e-9; v += xs) {
    rgb(cr, fabs(v) < 1e-9 ? AXIS_RGB : GRID_RGB, 1);
    cairo_move_to(cr, fx(&f, v), f.y);
    cairo_line_to(cr, fx(&f, v), f.y + f.h);
    cairo_stroke(cr);
    tick_label(b, sizeof b, v, xs);
    text(cr, b, fx(&f, v), f.y + f.h + 6, 10.5, 0, 0.5, 0, MUTED_RGB);
  }
  if (s->title) text(cr, s->title, 12, 10, 13, 1, 0, 0, PLOT_INK);
  if (s->xlabel) text(cr, s->xlabel, f.x + f.w / 2, f.y + f.h + 24, 11.5, 0, 0.5, 0, PLOT_INK);
  double rh = f.h / n;
  for (int i = 0; i < n; i++) {
    double cy = f.y + rh * (i + 0.5);
    if (i % 2 == 0) {
      rgb(cr, 0xf4f5f7, 0.8);
      cairo_rectangle(cr, f.x, f.y + rh * i, f.w, rh);
      cairo_fill(cr);
    }
    text(cr, rows[i].label, f.x - 10, cy, 11, i == n - 1, 1, 0.5, PLOT_INK);
    for (int r = 0; r < n_refs; r++)
      if (isfinite(rows[i].ref[r])) draw_marker(cr, r == 0 ? 2 : 3, fx(&f, rows[i].ref[r]), cy, 3.5, ref_rgb[r]);
    if (isfinite(rows[i].lo) && isfinite(rows[i].hi)) {
      rgb(cr, plot_palette[0], 0.55);
      cairo_set_line_width(cr, 3);
      cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
      cairo_move_to(cr, fx(&f, fmax(rows[i].lo, lo)), cy);
      cairo_line_to(cr, fx(&f, rows[i].hi), cy);
      cairo_stroke(cr);
    }
    if (isfinite(rows[i].value)) draw_marker(cr, 1, fx(&f, fmax(rows[i].value, lo)), cy, 4.5, plot_palette[0]);
  }
  legend_entry le[PLOT_MAX_REFS + 1];
  int nl = 0;
  le[nl++] = (legend_entry){"this model (95% CI)", plot_palette[0], 0, 1, 0};
  for (int r = 0; r < n_refs; r++) {
    int dup = 0;
    for (int q = 0; q < r; q++) dup |= !strcmp(ref_labels[q], ref_labels[r]);
    if (!dup) le[nl++] = (legend_entry){ref_labels[r], ref_rgb[r], 0, r == 0 ? 2 : 3, 0};
  }
  /* The legend sits above the plot area, right-aligned, in one row. */
  double x = f.x + f.w;
  for (int i = nl - 1; i >= 0; i--) {
    x -= text_width(cr, le[i].label, 10.5);
    text(cr, le[i].label, x, 17, 10.5, 0, 0, 0.5, PLOT_INK);
    draw_marker(cr, le[i].marker, x - 9, 17, 3.5, le[i].rgb);
    x -= 26;
  }
  return finish(sf, cr, s->width, s->height, out, e);
}

int plot_thumbnail(const uint8_t *px, int w, int h, int max_side, png_buf *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  if (w <= 0 || h <= 0 || max_side <= 0) return err_set(e, MSKX_EINVAL, "thumbnail: empty image");
  double sc = fmin(1.0, (double)max_side / (w > h ? w : h));
  int tw = (int)lround(w * sc), th = (int)lround(h * sc);
  tw = tw < 1 ? 1 : tw;
  th = th < 1 ? 1 : th;
  cairo_surface_t *src = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
  cairo_surface_t *dst = cairo_image_surface_create(CAIRO_FORMAT_RGB24, tw, th);
  if (cairo_surface_status(src) || cairo_surface_status(dst)) {
    cairo_surface_destroy(src);
    cairo_surface_destroy(dst);
    return err_set(e, MSKX_ENOMEM, "thumbnail: cannot create a %dx%d surface", w, h);
  }
  cairo_surface_flush(src);
  unsigned char *d = cairo_image_surface_get_data(src);
  int stride = cairo_image_surface_get_stride(src);
  for (int y = 0; y < h; y++) {
    uint32_t *row = (uint32_t *)(void *)(d + (size_t)y * stride);
    const uint8_t *p = px + (size_t)y * w * 3;
    for (int x = 0; x < w; x++) row[x] = (uint32_t)p[3 * x] << 16 | (uint32_t)p[3 * x + 1] << 8 | p[3 * x + 2];
  }
  cairo_surface_mark_dirty(src);
  cairo_t *cr = cairo_create(dst);
  cairo_scale(cr, (double)tw / w, (double)th / h);
  cairo_set_source_surface(cr, src, 0, 0);
  cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_GOOD);
  cairo_paint(cr);
  cairo_surface_destroy(src);
  return finish(dst, cr, tw, th, out, e);
}

void plot_release_fonts(void) {
  cairo_debug_reset_static_data();
  /* fontconfig is cairo's dependency, not ours to link: look FcFini up. */
  void (*fc_fini)(void) = NULL;
  *(void **)(&fc_fini) = dlsym(RTLD_DEFAULT, "FcFini");
  if (fc_fini) fc_fini();
}

char *base64_encode(const unsigned char *data, size_t len) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t n = 4 * ((len + 2) / 3);
  char *out = malloc(n + 1), *o = out;
  if (!out) return NULL;
  size_t i = 0;
  for (; i + 2 < len; i += 3) {
    uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
    *o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63], *o++ = tab[(v >> 6) & 63], *o++ = tab[v & 63];
  }
  if (i < len) {
    uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < len ? (uint32_t)data[i + 1] << 8 : 0);
    *o++ = tab[v >> 18];
    *o++ = tab[(v >> 12) & 63];
    *o++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
  *o = 0;
  return out;
}
