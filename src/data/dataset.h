/* The dataset index: studies and images of the train and valid splits of a
 * MURA-format dataset, read from MURA's CSVs, from the folder tree alone, or
 * from a generic CSV, and validated (see docs/data.md). Nothing is decoded. */
#ifndef MSKX_DATA_DATASET_H
#define MSKX_DATA_DATASET_H
#include <stddef.h>
#include <stdint.h>
#include "io/image.h"
#include "mskx.h"

enum ds_split_id { DS_TRAIN = 0, DS_VALID = 1, DS_NSPLITS = 2 };

enum ds_layout {
  DS_LAYOUT_MURA_CSV = 0,   /* MURA-v1.1/{train,valid}_{image_paths,labeled_studies}.csv */
  DS_LAYOUT_TREE = 1,       /* the same folder tree without CSVs: labels from folder names */
  DS_LAYOUT_GENERIC_CSV = 2 /* one CSV with a header: image_path,label[,study_id][,part][,split] */
};

typedef struct ds_study {
  char *path;      /* study id; MURA: "MURA-v1.1/train/XR_X/patient1/study1_positive/" */
  int label;       /* 0 normal, 1 abnormal */
  int part;        /* index into dataset.parts */
  int patient;     /* number of the patient<N> folder, -1 if there is none */
  int first_image; /* the study's images are split.images[first_image .. +n_images) */
  int n_images;
} ds_study;

typedef struct ds_image {
  char *path; /* path to open (resolved against the dataset's folder) */
  char *rel;  /* as listed (MURA: "MURA-v1.1/train/.../image1.png") */
  int study;  /* index into split.studies */
  int label;  /* copies of the study's label and part, for the loader */
  int part;
} ds_image;

typedef struct ds_split {
  const char *name; /* "train" or "valid" */
  ds_study *studies;
  int n_studies;
  ds_image *images; /* grouped by study, studies in listing order */
  int n_images;
} ds_split;

#define DS_DEFAULT_MAX_WARNINGS 20
/* Most body parts a dataset may have: part sets (the loader's and trainer's
 * selections) are 64-bit masks. dataset_open refuses a dataset with more. */
#define DS_MAX_PARTS 64

typedef struct dataset {
  char *root;   /* the folder (or generic CSV file) it was read from */
  int layout;   /* enum ds_layout */
  char **parts; /* sorted part names ("XR_ELBOW", ...; "ALL" when a CSV names none) */
  int n_parts;
  ds_split train, valid;
  int n_warnings; /* all warnings; only the first max_warnings are kept as text */
  int n_warning_msgs;
  char **warnings;
} dataset;

typedef struct dataset_options {
  int require_train;   /* an empty train split is an error */
  int require_valid;   /* an empty valid split is an error */
  int skip_file_check; /* do not stat listed images (they are checked by default) */
  int generic_split;   /* split of a generic CSV without a split column (default DS_VALID) */
  int max_warnings;    /* warning texts kept (0: DS_DEFAULT_MAX_WARNINGS) */
} dataset_options;

/* Reads the dataset at path: a folder holding MURA's CSVs (or a folder that
 * contains MURA-v1.1/), a MURA-shaped folder tree without CSVs, or a generic
 * CSV file. opt may be NULL (defaults: nothing required, files checked, the
 * generic CSV fills valid). On failure *out is NULL and e names the file and
 * line of the first problem (and how many more there were); more than
 * DS_MAX_PARTS parts is MSKX_ELIMIT. */
int dataset_open(const char *path, const dataset_options *opt, dataset **out, mskx_err *e);
void dataset_free(dataset *d);

const char *dataset_layout_name(int layout);
/* Index of a part by name ("XR_WRIST"; "WRIST" also matches, see
 * part_name_matches in data/parts.h), -1 if absent. */
int dataset_part_index(const dataset *d, const char *name);
const ds_split *dataset_split(const dataset *d, int split_id);

/* Counts of one part (or all parts with part = -1) by class: [0] normal, [1] abnormal. */
typedef struct ds_counts {
  int studies[2];
  int images[2];
} ds_counts;
ds_counts dataset_count(const ds_split *s, int part);

/* Header or full-decode scan of every image of a split (for `mskx stats`):
 * sizes from image_probe, or from image_load when decode is set. Unreadable
 * images get w = h = -1 and an error message. */
typedef struct ds_scan {
  int n;
  int *w, *h;
  char **error; /* n entries, NULL where the image was read */
  int n_bad;
} ds_scan;
int dataset_scan(const ds_split *s, int decode, int threads, const image_limits *lim, ds_scan *out,
                 mskx_err *e);
void ds_scan_free(ds_scan *s);

#endif
