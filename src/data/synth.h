/* Synthetic MURA-format datasets: procedural radiograph phantoms of the seven
 * MURA body parts, written in MURA-v1.1's folder layout with its four CSVs so
 * demos and tests can run without the real (unshippable) data. The images are
 * phantoms with no clinical meaning. See docs/synth.md. */
#ifndef MSKX_DATA_SYNTH_H
#define MSKX_DATA_SYNTH_H
#include <stdint.h>
#include "mskx.h"

/* Parts in MURA's CSV order (the order the real train_image_paths.csv lists them). */
enum synth_part {
  SYNTH_SHOULDER = 0,
  SYNTH_HUMERUS,
  SYNTH_FINGER,
  SYNTH_ELBOW,
  SYNTH_WRIST,
  SYNTH_FOREARM,
  SYNTH_HAND,
  SYNTH_NPARTS
};

enum synth_finding {
  SYNTH_FINDING_NONE = 0,
  SYNTH_FINDING_FRACTURE,  /* lucent line across a bone, fragments often displaced */
  SYNTH_FINDING_HARDWARE,  /* metal plate and screws, screws alone, nail or wires */
  SYNTH_FINDING_LESION,    /* lytic lucency or sclerotic blob inside a bone */
  SYNTH_NFINDINGS
};

enum synth_split { SYNTH_TRAIN = 0, SYNTH_VALID = 1 };

/* 7 parts x 2 splits: the least that puts every part in both splits. */
#define SYNTH_MIN_STUDIES 14
/* Patient folders have five digits and every patient has at least one study. */
#define SYNTH_MAX_STUDIES 99999
#define SYNTH_MIN_SIZE 32
#define SYNTH_MAX_SIZE 4096
#define SYNTH_MAX_VIEWS 4
/* synth_config_default's values (also `mskx synth`'s option table's). */
#define SYNTH_DEFAULT_STUDIES 700
#define SYNTH_DEFAULT_SEED 1
#define SYNTH_DEFAULT_MIN_SIZE 200
#define SYNTH_DEFAULT_MAX_SIZE 512
#define SYNTH_DEFAULT_VALID_FRACTION 0.15
#define SYNTH_DEFAULT_ABNORMAL_FRACTION 0.4 /* MURA's is 0.41 */
#define SYNTH_DEFAULT_FINDING_SCALE 1.0

typedef struct synth_config {
  const char *out_dir;      /* writes out_dir/MURA-v1.1/ and out_dir/synth_findings.csv */
  int studies;              /* total over both splits (default 700) */
  uint64_t seed;            /* default 1 */
  int min_size, max_size;   /* width and height are each uniform in [min, max] (200, 512) */
  double valid_fraction;    /* share of each part's studies in valid, whole patients (0.15) */
  double abnormal_fraction; /* share of abnormal studies in each split (0.4, MURA's is 0.41) */
  int threads;              /* 0: OpenMP's default; output never depends on it */
  int force;                /* write into a non-empty out_dir/MURA-v1.1 */
  double finding_scale;     /* findings' size and contrast multiplier, 1..4 (1: the default
                               difficulty; larger is easier to learn, as in the demo) */
  int dicom;                /* write imageN.dcm (a mix of transfer syntaxes, bit depths,
                               MONOCHROME1/2, windows and rescales; io/dicom.h) instead of PNG */
} synth_config;

typedef struct synth_summary {
  int studies[2], images[2], abnormal[2], patients[2];  /* per split */
  int part_studies[2][SYNTH_NPARTS];
  int abnormal_images;      /* images of abnormal studies */
  int finding_images;       /* of those, images where the finding is drawn */
  int finding_studies[SYNTH_NFINDINGS];
  int rgb_images;
  double seconds;
} synth_summary;

void synth_config_default(synth_config *cfg);
/* Checks ranges; the message names the offending option. */
int synth_config_check(const synth_config *cfg, mskx_err *e);

/* Plans the dataset from cfg->seed, renders every view (in parallel over
 * studies) and writes PNGs and CSVs. Refuses a non-empty out_dir/MURA-v1.1
 * unless cfg->force; with force, files are written over and files from an
 * earlier run that this one does not produce are left in place. */
int synth_generate(const synth_config *cfg, synth_summary *out, mskx_err *e);

/* One rendered view. box is the finding's bounding box in pixels
 * (x0, y0, x1, y1, inclusive-exclusive) when finding != NONE. */
typedef struct synth_image {
  int w, h, channels;
  uint8_t *px;     /* w*h*channels bytes, owned */
  int finding;
  int box[4];
} synth_image;

/* Renders view `view` (1..SYNTH_MAX_VIEWS) of study `study` (its index in the
 * plan: the line order of train_labeled_studies.csv, then valid's) of the
 * given part, drawing `finding` (NONE for a normal view). The anatomy, pose, exposure and noise depend only on (seed, study, view, sizes,
 * part), never on the finding, so the same key rendered with and without a
 * finding differs only where the finding is. Random streams (core/rng.h):
 * rng_for(seed, study, 0) anatomy and finding geometry, rng_for(seed, study,
 * view) pose and imaging, rng_for(seed, study, SYNTH_STREAM_STUDY) finding
 * type and per-view visibility. */
#define SYNTH_STREAM_STUDY 8
int synth_render(uint64_t seed, uint64_t study, int view, int part, int finding, int min_size,
                 int max_size, synth_image *out, mskx_err *e);
/* The same with a finding size/contrast multiplier (synth_config.finding_scale). */
int synth_render_scaled(uint64_t seed, uint64_t study, int view, int part, int finding, int min_size, int max_size,
                        float finding_scale, synth_image *out, mskx_err *e);
void synth_image_free(synth_image *img);

/* "XR_SHOULDER", ...; "fracture", ... */
const char *synth_part_name(int part);
const char *synth_finding_name(int finding);

#endif
