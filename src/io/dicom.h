/* DICOM Part 10 input: a header scanner written here in C (iterative, every
 * length checked against the buffer, nesting bounded), the display pipeline
 * that turns stored values into the 8-bit grey image the networks see
 * (docs/dicom.md), and pixel decoding: native syntaxes here, compressed ones
 * through GDCM behind src/io/dicom_codec.h (the only C++ in the tree).
 * Patient identifiers read here are for copying into Structured Reports
 * only; no message built here ever contains them. */
#ifndef MSKX_IO_DICOM_H
#define MSKX_IO_DICOM_H
#include <stddef.h>
#include <stdint.h>
#include "io/dicom_options.h"
#include "io/image.h"
#include "mskx.h"

/* Attribute strings are copied with their DICOM maximum lengths (PS3.5 6.2);
 * a longer value is cut there. */
#define DICOM_UI_MAX 64
#define DICOM_LO_MAX 64
#define DICOM_PN_MAX 324 /* 5 components x 64 x 3 groups + separators, PS3.5 6.2 */
/* Frames in one file: far above any radiograph series, small enough to refuse absurd headers. */
#define DICOM_MAX_FRAMES 4096
/* Sequence nesting: real radiograph headers nest 3-4 deep; hostile files nest thousands. */
#define DICOM_MAX_DEPTH 32

/* What the header says; filled by dicom_scan without decoding pixels. */
typedef struct dicom_meta {
  char transfer_syntax[DICOM_UI_MAX + 1];
  char sop_class_uid[DICOM_UI_MAX + 1], sop_instance_uid[DICOM_UI_MAX + 1];
  char study_uid[DICOM_UI_MAX + 1], series_uid[DICOM_UI_MAX + 1];
  char modality[17], photometric[17];
  char body_part[DICOM_LO_MAX + 1], study_desc[DICOM_LO_MAX + 1], series_desc[DICOM_LO_MAX + 1];
  char laterality[17];
  /* Patient and study modules, copied into SR documents; never logged. */
  char patient_name[DICOM_PN_MAX + 1], patient_id[DICOM_LO_MAX + 1], patient_birth_date[17], patient_sex[17];
  char study_date[17], study_time[17], study_id[17], accession[17], referring_physician[DICOM_PN_MAX + 1];
  char charset[DICOM_LO_MAX + 1]; /* Specific Character Set, for copying names faithfully */
  int rows, cols, frames, samples, bits_allocated, bits_stored, high_bit, pixel_rep, planar;
} dicom_meta;

/* 1 if buf looks like DICOM: "DICM" at offset 128, or no preamble but a
 * first element in group 0002 or 0008 with a plausible explicit or implicit header. */
int dicom_is_dicom(const uint8_t *buf, size_t len);

/* Header only: attributes and sizes, lengths checked against the buffer, the
 * transfer syntax checked against the supported list. name is for messages. */
int dicom_scan_meta(const uint8_t *buf, size_t len, const char *name, dicom_meta *out, mskx_err *e);

/* A decoded file: one 8-bit grey image per frame (only the first with
 * DICOM_FRAMES_FIRST), and its header. */
typedef struct dicom_image {
  int n_frames;
  gray_image *frames;
  dicom_meta meta;
} dicom_image;

/* Decodes and renders every frame through the display pipeline. The pixel
 * limit applies per frame; frames x pixels is bounded by DICOM_MAX_FRAMES
 * and the file length is checked against the declared sizes before any
 * pixel buffer is allocated. opt may be NULL (defaults). */
int dicom_decode(const uint8_t *buf, size_t len, const char *name, const image_limits *lim, dicom_image *out,
                 mskx_err *e);
void dicom_image_free(dicom_image *img);

/* Streams one frame into sink (image.h) with bounded memory: frame k >= 1
 * is frame k of the file (1-based); frame 0 is the file's one image, its only
 * frame or its first with DICOM_FRAMES_FIRST, a multi-frame file being
 * otherwise refused with a message saying so. Only that frame's fragments
 * are decoded when the file has one fragment per frame. What decoding holds
 * (the inflated data set, GDCM's fragments and decoded samples, the
 * renderer's tables, the 8-bit frame, the sink's cost) plus extra (what the
 * caller holds for this file, e.g. its bytes) is charged to lim->budget. */
int dicom_stream(const uint8_t *buf, size_t len, const char *name, const image_limits *lim, uint64_t extra, int frame,
                 const image_sink *sink, mskx_err *e);

/* MURA part ("XR_WRIST", ...) from BodyPartExamined, then StudyDescription,
 * then SeriesDescription (table in docs/dicom.md). Returns 1 and fills out,
 * or 0 when nothing maps (out = ""). */
int dicom_mura_part(const dicom_meta *m, char *out, size_t n);

/* A UID under the 2.25 root (an integer derived from a and b, PS3.5 B.2):
 * the same inputs give the same UID. out holds DICOM_UI_MAX + 1 bytes. */
void dicom_make_uid(uint64_t a, uint64_t b, char *out);

/* Writes a synthetic radiograph (8-bit grey or RGB pixels) as DICOM: the
 * variant (0..) picks the transfer syntax, bit depth, photometric
 * interpretation, rescale and window (docs/dicom.md), chosen so that the
 * display pipeline gives back exactly the given 8-bit pixels, except the
 * variants without a window, which go through the auto window. Atomic. */
typedef struct dicom_synth_info {
  const char *body_part, *patient_id, *study_date;
  uint64_t study_key, image_key;  /* UIDs derive from these */
  int series_number, instance_number, variant;
} dicom_synth_info;
int dicom_write_synthetic(const char *path, const uint8_t *px, int w, int h, int channels,
                          const dicom_synth_info *info, mskx_err *e);

/* A Structured Report for one study's result (Comprehensive SR, one
 * container; content in docs/dicom.md): the probability, decision and
 * threshold, the body part, the model and mskx version, references to the
 * source images; Study Instance UID and the patient and study modules copied
 * from src[0]; the report's Series and SOP Instance UIDs from in. Returns a
 * malloc'd Part 10 file. */
typedef struct dicom_sr_in {
  const dicom_meta *src;   /* n_src source images (n_src >= 1) */
  int n_src;
  double probability, threshold;
  int abnormal;
  const char *part;        /* "XR_WRIST" or "" */
  const char *model;       /* model file name (no folders) */
  const char *datetime;    /* "YYYYMMDDHHMMSS" content date and time */
  const char *series_uid, *sop_uid;  /* the report's own UIDs */
} dicom_sr_in;
int dicom_sr_encode(const dicom_sr_in *in, uint8_t **out, size_t *len, mskx_err *e);
/* The SR of a study given as files: reads the DICOM files' headers (other
 * files are skipped; none DICOM is an error), fills in->src, the current
 * UTC date-time and the report's UIDs (derived from the sources and the
 * result), writes DIR/SR_<SOPInstanceUID>.dcm atomically and returns its
 * path in out_path. */
int dicom_sr_write_files(const char *dir, const char *const *paths, int n, const dicom_sr_in *result, char *out_path,
                         size_t out_n, mskx_err *e);
/* The same from encoded images (serve): the SR bytes. */
int dicom_sr_from_encoded(const uint8_t *const *bufs, const size_t *lens, int n, const dicom_sr_in *result,
                          uint8_t **out, size_t *len, mskx_err *e);

/* Groups image files by StudyInstanceUID (a folder exported from a PACS may
 * hold several studies): group[i] is path i's study, numbered in order of
 * first appearance; files that are not DICOM or lack the UID share one group
 * with uid "". uids (n entries) receives each group's UID. */
int dicom_group_by_study(const char *const *paths, int n, int *group, int *n_groups, char (*uids)[DICOM_UI_MAX + 1],
                         mskx_err *e);

#endif
