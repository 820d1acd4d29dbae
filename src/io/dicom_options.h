/* How DICOM files are rendered to 8-bit grey: one options struct carried in
 * image_limits wherever images are decoded, with the parsers every command
 * shares for --dicom-window and --dicom-frames (docs/dicom.md). */
#ifndef MSKX_IO_DICOM_OPTIONS_H
#define MSKX_IO_DICOM_OPTIONS_H
#include "mskx.h"

enum dicom_window_mode {
  DICOM_WINDOW_AUTO = 0, /* the file's VOI, else a percentile window (default) */
  DICOM_WINDOW_MINMAX,   /* the file's VOI, else the full range of the pixel values */
  DICOM_WINDOW_FIXED     /* center,width given by the user, overriding the file */
};
enum dicom_frames_mode {
  DICOM_FRAMES_ALL = 0, /* every frame is an image of the study (default) */
  DICOM_FRAMES_FIRST    /* only the first frame */
};

typedef struct dicom_options {
  int window;           /* enum dicom_window_mode */
  double center, width; /* DICOM_WINDOW_FIXED, in modality units (after rescale) */
  int frames;           /* enum dicom_frames_mode */
} dicom_options;

/* "auto", "minmax" or "CENTER,WIDTH" (width >= 1). */
int dicom_options_parse_window(const char *s, dicom_options *o, mskx_err *e);
/* "all" or "first". */
int dicom_options_parse_frames(const char *s, dicom_options *o, mskx_err *e);
/* The same checks without a result: the syntax check of an option table's
 * row (core/options.h). */
int dicom_check_window(const char *s, mskx_err *e);
int dicom_check_frames(const char *s, mskx_err *e);

#endif
