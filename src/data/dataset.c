/* The dataset index (see dataset.h): opening a dataset (the reading is done by
 * the builder, dataset_build.h), freeing it, and queries over it. */
#include "data/dataset.h"
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"
#include "data/dataset_build.h"
#include "data/parts.h"

int dataset_open(const char *path, const dataset_options *opt, dataset **out, mskx_err *e) {
  *out = NULL;
  dataset *d = calloc(1, sizeof *d);
  if (!d || !(d->root = str_dup(path))) {
    free(d);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  d->train.name = "train";
  d->valid.name = "valid";
  int rc = ds_build_dataset(path, opt, d, e);
  if (rc) {
    dataset_free(d);
    return rc;
  }
  *out = d;
  return MSKX_OK;
}

static void split_free(ds_split *s) {
  for (int i = 0; i < s->n_studies; i++) free(s->studies[i].path);
  for (int i = 0; i < s->n_images; i++) {
    free(s->images[i].path);
    free(s->images[i].rel);
  }
  free(s->studies);
  free(s->images);
}

void dataset_free(dataset *d) {
  if (!d) return;
  split_free(&d->train);
  split_free(&d->valid);
  for (int i = 0; i < d->n_parts; i++) free(d->parts[i]);
  free(d->parts);
  for (int i = 0; i < d->n_warning_msgs; i++) free(d->warnings[i]);
  free(d->warnings);
  free(d->root);
  free(d);
}

const char *dataset_layout_name(int layout) {
  switch (layout) {
    case DS_LAYOUT_MURA_CSV:
      return "MURA CSVs";
    case DS_LAYOUT_TREE:
      return "folder tree";
    case DS_LAYOUT_GENERIC_CSV:
      return "generic CSV";
    default:
      return "unknown";
  }
}

int dataset_part_index(const dataset *d, const char *name) {
  for (int i = 0; i < d->n_parts; i++)
    if (part_name_matches(d->parts[i], name)) return i;
  return -1;
}

const ds_split *dataset_split(const dataset *d, int split_id) {
  return split_id == DS_TRAIN ? &d->train : split_id == DS_VALID ? &d->valid : NULL;
}

ds_counts dataset_count(const ds_split *s, int part) {
  ds_counts c = {{0, 0}, {0, 0}};
  for (int i = 0; i < s->n_studies; i++) {
    const ds_study *st = &s->studies[i];
    if (part >= 0 && st->part != part) continue;
    c.studies[st->label]++;
    c.images[st->label] += st->n_images;
  }
  return c;
}
