/* mskx: abnormality detection in musculoskeletal radiographs (MURA task).
 *
 * Public C API. Every function that can fail returns an MSKX_* status code
 * (0 on success) and, when given a non-NULL mskx_err, fills it with a
 * one-line message. The library never prints and never exits. */
#ifndef MSKX_H
#define MSKX_H

#ifdef __cplusplus
extern "C" {
#endif

#define MSKX_VERSION "0.1.0"

/* Marks the functions libmskx.so exports; the library is built with hidden
 * visibility, so nothing else in it is part of the ABI. */
#if defined(__GNUC__)
#define MSKX_API __attribute__((visibility("default")))
#else
#define MSKX_API
#endif

enum mskx_status {
  MSKX_OK = 0,
  MSKX_EINVAL = 1,      /* invalid argument or option value */
  MSKX_EIO = 2,         /* file missing, unreadable or unwritable */
  MSKX_EFORMAT = 3,     /* malformed or truncated file content */
  MSKX_ENOMEM = 4,      /* allocation failed */
  MSKX_ESHAPE = 5,      /* tensor shape or count mismatch */
  MSKX_EUNSUPPORTED = 6,/* valid but not supported (dtype, layout, arch) */
  MSKX_ELIMIT = 7,      /* a configured limit was exceeded (pixels, sizes) */
  MSKX_EBACKEND = 8,    /* the compute backend (oneDNN) reported a failure */
  MSKX_EINTERNAL = 9,
  MSKX_ECANCELED = 10, /* stopped at the caller's request (a cancel flag it set) */
  MSKX_EBUSY = 11       /* a shared resource (the decode memory budget) stayed
                           spent for the wait limit; retrying later can succeed */
};

typedef struct mskx_err {
  int code;
  char msg[1024];
} mskx_err;

/* A short English name for a status code. */
MSKX_API const char *mskx_status_name(int code);

/* The library's version (MSKX_VERSION of the build it came from): lets a
 * program loading libmskx.so at run time check what it got. */
MSKX_API const char *mskx_version(void);


/* ======================================================================
 * Inference: load a model, bundle or ensemble once, predict studies.
 *
 * A study is one or more radiographs of the same body part; the study
 * probability aggregates the per-image probabilities (mean by default, the
 * MURA paper's rule) and the decision is "abnormal" when probability >
 * threshold. Thread safety: one mskx_model may serve mskx_predict_* calls
 * from several threads at once (it keeps a small pool of prediction
 * contexts, see mskx_load_options.max_contexts); results are bit-identical
 * to sequential calls. A model must not be freed while a call is running.
 * ====================================================================== */

#include <stddef.h>

/* What a loaded file is. */
enum mskx_model_kind {
  MSKX_KIND_MODEL = 0,    /* one network: *.safetensors, metadata format "mskx-model-1" */
  MSKX_KIND_BUNDLE = 1,   /* per-part models: JSON format "mskx-bundle-1" */
  MSKX_KIND_ENSEMBLE = 2  /* several members combined: JSON format "mskx-ensemble-1" */
};

/* MSKX_PRECISION_AUTO: at load time one forward pass of each candidate
 * (fp32, and bf16 where the CPU runs it natively) is timed and the fastest
 * is kept (mskx_model_info's precision says which). */
enum mskx_precision { MSKX_PRECISION_FP32 = 0, MSKX_PRECISION_BF16 = 1, MSKX_PRECISION_AUTO = 2 };

/* CAM maps and overlays are rendered at display size: an image's own size
 * when its longest side is at most this, else scaled down to it. */
#define MSKX_DISPLAY_MAX_SIDE 1024

/* Study aggregation of image probabilities. */
enum mskx_agg { MSKX_AGG_MEAN = 0 /* the MURA paper */, MSKX_AGG_MAX = 1 };

typedef struct mskx_model mskx_model;

typedef struct mskx_load_options {
  int threads;          /* compute threads per prediction context; 0 = all cores */
  int precision;        /* enum mskx_precision; default FP32 */
  int max_batch;        /* images per forward pass; 0 = 16 */
  int max_contexts;     /* concurrent predictions computed in parallel (each a full
                           copy of the networks and their activation memory);
                           0 = max(1, cores / threads); further calls wait */
  unsigned long long max_pixels;  /* per decoded image; 0 = 16384 x 16384 */
  unsigned long long max_decode_bytes;
                        /* memory that decoding may hold at once across all calls
                           on this model (codec state, rows in flight, and the
                           whole image for interlaced PNGs (1 byte per pixel) and
                           progressive JPEGs (about 2 bytes per pixel and
                           component)); 0 = a quarter of physical memory
                           (mskx_default_decode_bytes). An image that alone needs
                           more fails with MSKX_ELIMIT; a call that finds the
                           budget spent waits, then fails with MSKX_EBUSY */
  int decode_wait_ms;   /* that wait: 0 = 30000; < 0 = fail at once */
  const char *dicom_window;  /* DICOM files without a VOI window: "auto" (NULL: the
                                default percentile window), "minmax", or "C,W" to
                                override every file's window (docs/dicom.md) */
  int dicom_first_frame;     /* 1: only the first frame of a multi-frame DICOM file;
                                0: every frame is an image of the study */
} mskx_load_options;

/* The default of max_decode_bytes on this machine. */
MSKX_API unsigned long long mskx_default_decode_bytes(void);

/* Fills *o with the defaults (all zero). */
MSKX_API void mskx_load_options_default(mskx_load_options *o);

/* Loads a model file, a bundle or an ensemble (detected from the content;
 * every member is loaded and validated now). opt may be NULL. On failure
 * *out is NULL and err says which file and field is wrong. Free with
 * mskx_model_free. */
MSKX_API int mskx_model_load(const char *path, const mskx_load_options *opt, mskx_model **out, mskx_err *err);

/* Frees a model and every context it created; NULL is allowed. */
MSKX_API void mskx_model_free(mskx_model *m);

/* Description of a loaded model. Strings are owned by the model and stay
 * valid until mskx_model_free. The type is used as `struct mskx_model_info`
 * (no typedef, so that the function below can carry the same name). */
struct mskx_model_info {
  int kind;                 /* enum mskx_model_kind */
  const char *kind_name;    /* "model", "bundle" or "ensemble" */
  const char *path;         /* as given to mskx_model_load */
  const char *arch;         /* architecture; for bundles/ensembles the distinct
                               archs of the members, comma-separated */
  int size;                 /* input side in pixels; 0 when members differ */
  const char *parts;        /* "all" or comma-separated XR_* parts served; for a
                               bundle its routed parts (plus "default" if any) */
  double threshold;         /* decision threshold; bundles: the members' common
                               threshold, or -1 when they differ (each member
                               decides with its own; see the result) */
  int n_members;            /* 1 for a model file */
  const char *method;       /* ensembles: "mean", "vote", "weighted" or "stack"; else "" */
  const char *metadata_json;/* JSON object: the model file's metadata, or the
                               bundle/ensemble with each member's metadata */
  const char *precision;    /* the compute precision used: "fp32" or "bf16"
                               (MSKX_PRECISION_AUTO's choice) */
};

/* Fills *out; returns MSKX_EINVAL for NULL arguments. */
MSKX_API int mskx_model_info(const mskx_model *m, struct mskx_model_info *out);

typedef struct mskx_predict_options {
  int agg;              /* enum mskx_agg; default MSKX_AGG_MEAN */
  int tta_flip;         /* 1: each image's probability is the mean of the image's
                           and its horizontal mirror's */
  int want_cam;         /* 1: per-image class activation maps (result images[i].cam) */
  int want_overlay;     /* 1: per-image PNG overlays of the map on the radiograph
                           (images[i].overlay_png; .cam only with want_cam) */
  float overlay_alpha;  /* opacity of the colour map in the overlay; 0 = 0.45 */
  int want_image;       /* 1: per-image PNG of the decoded 8-bit grey input, as the
                           network sees it before resizing, at display size
                           (images[i].image_png): how a DICOM file was rendered */
} mskx_predict_options;

/* Fills *o with the defaults (all zero: mean, no TTA, no maps). */
MSKX_API void mskx_predict_options_default(mskx_predict_options *o);

/* An encoded image (PNG or JPEG bytes). name is for messages and results
 * (may be NULL: "image <i>" is used). */
typedef struct mskx_encoded_image {
  const unsigned char *bytes;
  size_t len;
  const char *name;
} mskx_encoded_image;

/* A decoded image: channels 1 (grey) or 3 (RGB, converted to grey with BT.601
 * luma as decoding does); stride = bytes per row (0 = width*channels*bytes per
 * sample). bits_per_sample 8 (0 means 8) or 16: 16-bit samples are uint16_t in
 * host byte order (pixels then points to them, 2-byte aligned) and are reduced
 * to 8 bits exactly as the PNG decoder reduces 16-bit PNGs (grey rounded by
 * 255/65535; RGB through the luma in one rounding step), so a 16-bit array and
 * its 16-bit PNG file predict the same. */
typedef struct mskx_pixel_image {
  const unsigned char *pixels;
  int width, height, channels, stride;
  const char *name;
  int bits_per_sample;
} mskx_pixel_image;

/* Per-image result. */
typedef struct mskx_image_result {
  char *name;                     /* the input's name */
  int width, height;              /* the image's own size */
  double probability;             /* P(abnormal) of this image */
  int cam_width, cam_height;      /* display size of cam and overlay: width x height
                                     when the longer side is at most
                                     MSKX_DISPLAY_MAX_SIDE, else scaled down to it
                                     (0 when none of cam, overlay, image was asked for) */
  float *cam;                     /* cam_width*cam_height map in [0,1], row-major, or NULL */
  unsigned char *overlay_png;     /* PNG (RGB, cam_width x cam_height) or NULL */
  size_t overlay_png_len;
  unsigned char *image_png;       /* with want_image: PNG (grey, cam_width x cam_height), else NULL */
  size_t image_png_len;
} mskx_image_result;

/* Study result; free with mskx_result_free. */
typedef struct mskx_result {
  double probability;       /* study P(abnormal) */
  int abnormal;             /* decision: probability > threshold */
  double threshold;         /* the threshold that decided */
  char part[32];            /* XR_* part used (given or parsed), "" if none */
  char *model_used;         /* bundles: the member file that served the study;
                               else the loaded path (owned by the result) */
  int n_images;
  mskx_image_result *images;
  int n_members;            /* ensembles: per-member study probabilities; else 0 */
  double *member_probabilities;
  char study_uid[65];       /* DICOM input: the first image's StudyInstanceUID, else "" */
  int part_from_dicom;      /* 1 when part came from the DICOM body-part attributes */
} mskx_result;

/* Predicts one study from encoded images (PNG, JPEG or DICOM). part
 * ("XR_WRIST", may be NULL) routes bundles; for others it is only reported;
 * when NULL, DICOM images' BodyPartExamined/StudyDescription/SeriesDescription
 * supply it where they name a MURA part (docs/dicom.md). Every frame of a
 * multi-frame DICOM file is an image of the study (named "NAME#K"), unless
 * dicom_first_frame was set at load. opt may be NULL. n must be >= 1. A bad
 * image fails the whole call with an error naming it. */
MSKX_API int mskx_predict_encoded(mskx_model *m, const mskx_encoded_image *imgs, int n, const char *part,
                         const mskx_predict_options *opt, mskx_result **out, mskx_err *err);

/* A DICOM Structured Report (Comprehensive SR) of a result predicted from
 * imgs, the same encoded images: probability, decision, threshold, part,
 * model and version, references to the source instances; the study and
 * patient modules copied from the first DICOM image (docs/dicom.md). At least
 * one image must be DICOM. *sr is malloc'd: release it with free(). */
MSKX_API int mskx_structured_report(const mskx_model *m, const mskx_result *r, const mskx_encoded_image *imgs, int n,
                           unsigned char **sr, size_t *len, mskx_err *err);

/* The same from decoded pixels. */
MSKX_API int mskx_predict_pixels(mskx_model *m, const mskx_pixel_image *imgs, int n, const char *part,
                        const mskx_predict_options *opt, mskx_result **out, mskx_err *err);

/* The same from image files; when part is NULL it is parsed from an XR_*
 * component of the first path, else taken from DICOM attributes as above. */
MSKX_API int mskx_predict_files(mskx_model *m, const char *const *paths, int n, const char *part,
                       const mskx_predict_options *opt, mskx_result **out, mskx_err *err);

/* Frees a result; NULL is allowed. */
MSKX_API void mskx_result_free(mskx_result *r);

#ifdef __cplusplus
}
#endif
#endif
