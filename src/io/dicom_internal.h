/* Private to src/io/dicom*.c: the scanned header (with the attributes the
 * display pipeline needs), the pipeline itself, and codestream checks. Kept
 * apart from GDCM so every piece is testable and fuzzable in plain C. */
#ifndef MSKX_IO_DICOM_INTERNAL_H
#define MSKX_IO_DICOM_INTERNAL_H
#include <stddef.h>
#include <stdint.h>
#include "io/dicom.h"

/* How the pixel data is stored. */
enum dicom_ts_kind {
  TS_IMPLICIT_LE,
  TS_EXPLICIT_LE,
  TS_DEFLATED,
  TS_EXPLICIT_BE,
  TS_JPEG,      /* baseline, extended, lossless (process 14, SV1) */
  TS_JPEG_LS,
  TS_J2K,
  TS_RLE
};

typedef struct dicom_ts {
  const char *uid, *name;
  int kind;
} dicom_ts;

/* Looks a UID up in the supported table; NULL if not supported. */
const dicom_ts *dicom_ts_find(const char *uid);

/* A lookup table from a Modality or VOI LUT Sequence (first item). */
typedef struct dicom_lut {
  int present;
  int entries;       /* from the descriptor; 0 there means 65536 */
  int first_mapped;  /* signed when the pixel data is signed (modality) */
  int bits;          /* bits per entry, 8..16 */
  const uint8_t *data;  /* entries x 16-bit words, in the file's byte order */
  size_t data_len;
} dicom_lut;

/* Everything the pipeline reads from a file, besides dicom_meta. */
typedef struct dicom_render_params {
  double slope, intercept;
  dicom_lut modality_lut, voi_lut;
  int have_window;
  double window_center, window_width;
  int voi_function;  /* 0 LINEAR, 1 LINEAR_EXACT, 2 SIGMOID */
  int have_padding, have_padding_limit;
  int padding, padding_limit;  /* stored values, sign applied */
  int big_endian;    /* LUT data byte order */
} dicom_render_params;

enum { VOI_LINEAR = 0, VOI_LINEAR_EXACT = 1, VOI_SIGMOID = 2 };

/* A scanned file. Offsets point into data (the input buffer, or the
 * inflated data set for the deflated syntax, owned here). */
typedef struct dicom_scan {
  dicom_meta meta;
  dicom_render_params rp;
  const dicom_ts *ts;
  const uint8_t *data;
  size_t data_len;
  uint8_t *inflated;
  int have_pixels, encapsulated;
  size_t pixel_off, pixel_len;   /* native pixel data */
  size_t bot_off, bot_len;       /* encapsulated: basic offset table */
  int n_frags;
  size_t *frag_off, *frag_len;   /* encapsulated fragments (owned) */
} dicom_scan;

int dicom_scan_parse(const uint8_t *buf, size_t len, const char *name, dicom_scan *s, mskx_err *e);
void dicom_scan_free(dicom_scan *s);

/* Checks a fragment that begins a JPEG, JPEG-LS or JPEG 2000 codestream (or
 * an RLE segment table) against the data set's rows, columns and samples, so
 * a stream that lies about its size is refused before a codec allocates for
 * it. Fragments that continue an earlier one are skipped. A JPEG frame
 * header's sample precision goes to *jpeg_precision (when non-NULL). */
int dicom_check_fragment(int ts_kind, const uint8_t *p, size_t n, const dicom_meta *m, int *jpeg_precision,
                         const char *name, mskx_err *e);

/* Renders one frame to 8-bit grey. samples: the frame's raw samples, native
 * byte order for 16-bit (le16 = 0 swaps them), bits_allocated 8 or 16.
 * photometric is the interpretation after decoding (a codec may change it). */
typedef struct dicom_frame {
  const uint8_t *samples;
  int rows, cols, spp, bits_allocated, planar, swap16;
  /* Decoded by a codec: samples are values, clamped to the stored range
   * (lossy codecs overshoot it), not masked like native data's bits. */
  int decoded;
  const char *photometric;
} dicom_frame;
int dicom_render_frame(const dicom_frame *f, const dicom_meta *m, const dicom_render_params *rp,
                       const dicom_options *opt, uint8_t *out, const char *name, mskx_err *e);

/* The percentile window of auto mode, as fractions of the non-padding pixels. */
#define DICOM_AUTO_LO 0.005
#define DICOM_AUTO_HI 0.995

#endif
