/* The C face of src/io/dicom_gdcm.cpp, the one C++ file: decodes
 * encapsulated pixel data (JPEG, JPEG-LS, JPEG 2000, RLE) with GDCM and
 * writes Structured Reports. Never prints, never throws: every C++
 * exception becomes an mskx error naming the file. */
#ifndef MSKX_IO_DICOM_CODEC_H
#define MSKX_IO_DICOM_CODEC_H
#include <stddef.h>
#include <stdint.h>
#include "mskx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dicom_codec_in {
  const char *ts_uid, *photometric;
  int rows, cols, frames, samples, bits_allocated, bits_stored, high_bit, pixel_rep, planar;
  const uint8_t *bot;   /* basic offset table (may be empty) */
  size_t bot_len;
  int n_frags;
  const uint8_t *const *frag;
  const size_t *frag_len;
  size_t max_out;       /* refuse to decode to more bytes than this */
  int jpeg_precision;   /* JPEG: sample precision from the first frame header (0 = unknown) */
} dicom_codec_in;

/* The decoded frames, little-endian samples, as GDCM describes them after
 * decoding (a codec may change the photometric interpretation). */
typedef struct dicom_codec_out {
  uint8_t *buf;         /* malloc'd, free() it */
  size_t len;
  int bits_allocated, samples, planar;
  char photometric[17];
} dicom_codec_out;

int dicom_codec_decode(const dicom_codec_in *in, const char *name, dicom_codec_out *out, mskx_err *e);

/* One attribute to write: value as DICOM text (numbers for US/SS/FD,
 * backslash-separated for several values). */
typedef struct dicom_attr {
  uint16_t group, element;
  char vr[3];
  const char *value;
} dicom_attr;

/* An image file: native little-endian pixels in, transcoded by GDCM to
 * ts_uid (a lossless syntax), a Part 10 file out (malloc'd). */
typedef struct dicom_write_in {
  const char *ts_uid, *photometric;
  int rows, cols, samples, bits_allocated, bits_stored, pixel_rep;
  double slope, intercept;   /* Modality LUT; 1 and 0 for none */
  const uint8_t *pixels;
  int n_attrs;
  const dicom_attr *attrs;
} dicom_write_in;
int dicom_codec_write_image(const dicom_write_in *in, uint8_t **out, size_t *len, mskx_err *e);

#ifdef __cplusplus
}
#endif
#endif
