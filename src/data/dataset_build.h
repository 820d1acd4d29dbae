/* Private to src/data/: the builder that the dataset readers (MURA CSVs,
 * folder tree, generic CSV) fill and dataset_open turns into a dataset.
 * Nothing outside src/data/ includes this header; use dataset.h. */
#ifndef MSKX_DATA_DATASET_BUILD_H
#define MSKX_DATA_DATASET_BUILD_H
#include <stdbool.h>
#include "data/dataset.h"

typedef struct ds_build ds_build;

/* Reads path (layout detected) into d, whose root and split names are set;
 * runs the whole-listing checks and assembles the splits. */
int ds_build_dataset(const char *path, const dataset_options *opt, dataset *d, mskx_err *e);

/* Errors are collected: the first message is kept, later ones counted. */
void ds_build_error(ds_build *b, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void ds_build_warn(ds_build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool ds_build_failed(const ds_build *b);
/* Adds a study; returns its index, or -1 (error recorded) for a duplicate key.
 * part_name NULL: the XR_ component of key, else "ALL". where: "file:line". */
int ds_build_add_study(ds_build *b, int split, const char *key, int label, const char *part_name,
                       const char *src, int line);
/* Index of a study by key, -1 if absent. */
int ds_build_find_study(const ds_build *b, int split, const char *key);
int ds_build_study_label(const ds_build *b, int split, int study);
const char *ds_build_study_part(const ds_build *b, int split, int study);
/* Adds an image of a study; returns 0, or -1 (error recorded) for a duplicate rel. */
int ds_build_add_image(ds_build *b, int split, const char *rel, const char *path, int study, const char *src,
                       int line);
int ds_build_options_generic_split(const ds_build *b);

/* The label a study folder's name carries: _positive -> 1, _negative -> 0, else -1. */
int ds_suffix_label(const char *study_dir);

/* Readers: fill the builder for both splits. */
int ds_read_mura_csv(ds_build *b, const char *dir, mskx_err *e);
int ds_read_generic_csv(ds_build *b, const char *csv, mskx_err *e);
int ds_read_tree(ds_build *b, const char *dir, mskx_err *e);

#endif
