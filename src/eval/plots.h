/* Report figures drawn with cairo on image surfaces and encoded as PNG in
 * memory (cairo_surface_write_to_png_stream): line charts (ROC, training
 * curves), the reliability diagram, the kappa comparison, and thumbnails;
 * plus base64 for data: URIs. Figures are rendered at PLOT_SCALE times their
 * CSS size so that they stay sharp on high-density screens. */
#ifndef MSKX_EVAL_PLOTS_H
#define MSKX_EVAL_PLOTS_H
#include <stddef.h>
#include <stdint.h>
#include "mskx.h"

#define PLOT_SCALE 2

typedef struct png_buf {
  unsigned char *data; /* malloc'd PNG bytes */
  size_t len;
  int css_w, css_h;    /* display size in CSS pixels */
} png_buf;
void png_buf_free(png_buf *b);

/* Colours as 0xRRGGBB. */
extern const uint32_t plot_palette[8];
#define PLOT_INK 0x1d2433u

typedef struct plot_series {
  const double *x, *y;
  int n;
  const char *label;  /* legend text; NULL: not in the legend */
  uint32_t rgb;
  double width;       /* line width in CSS pixels; 0 = 1.75 */
  int dashed;
  int markers;        /* a dot at every point */
} plot_series;

typedef struct plot_spec {
  int width, height;              /* CSS pixels */
  const char *title, *xlabel, *ylabel;
  double xmin, xmax, ymin, ymax;
  int diagonal;                   /* the chance line y = x */
  int integer_x;                  /* x ticks on whole numbers only (epochs) */
  int legend_top;                 /* prefer the top right corner for the legend (default: bottom
                                     right); the corner hiding the fewest data points wins */
} plot_spec;

/* A line chart. NaN points break a line. */
int plot_lines(const plot_spec *s, const plot_series *series, int n, png_buf *out, mskx_err *e);

/* Reliability diagram over bins equal-width bins of [0, 1]: observed
 * fraction of abnormal studies against the mean predicted probability (bins
 * with studies only), with a bar chart of the study counts below. */
int plot_reliability(const plot_spec *s, const double *mean_pred, const double *frac_pos, const int *count, int bins,
                     png_buf *out, mskx_err *e);

/* One row of the kappa comparison: our value with its interval, and
 * reference values (the paper's model and radiologists) as markers. */
#define PLOT_MAX_REFS 4
typedef struct plot_kappa_row {
  const char *label;
  double value, lo, hi;         /* NaN: not available */
  double ref[PLOT_MAX_REFS];    /* NaN: none */
} plot_kappa_row;
/* ref_labels/ref_rgb describe the reference markers (n_refs <= PLOT_MAX_REFS). */
int plot_kappa(const plot_spec *s, const plot_kappa_row *rows, int n, const char *const *ref_labels,
               const uint32_t *ref_rgb, int n_refs, png_buf *out, mskx_err *e);

/* An RGB image (w x h x 3) scaled to fit max_side (never enlarged) with
 * cairo's good filter, as PNG. css_w/css_h receive the thumbnail's size. */
int plot_thumbnail(const uint8_t *rgb, int w, int h, int max_side, png_buf *out, mskx_err *e);

/* Frees cairo's and fontconfig's process-wide font caches so that leak
 * checkers see a clean exit. Call only while nothing is being drawn (e.g.
 * when a command ends); drawing afterwards re-initialises them. */
void plot_release_fonts(void);

/* Standard base64 (RFC 4648, padded) of data; malloc'd and NUL-terminated,
 * NULL when out of memory. */
char *base64_encode(const unsigned char *data, size_t len);

#endif
