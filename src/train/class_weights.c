/* Class weights (see class_weights.h). Sources: Rajpurkar et al., "MURA:
 * Large Dataset for Abnormality Detection in Musculoskeletal Radiographs"
 * (2017), section 3 (w_T,1 = |N_T|/(|A_T|+|N_T|), w_T,0 = |A_T|/(|A_T|+|N_T|));
 * sklearn.utils.class_weight.compute_class_weight('balanced'). */
#include "train/class_weights.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"

const char *cw_mode_name(cw_mode m) {
  switch (m) {
    case CW_NONE: return "none";
    case CW_MURA: return "mura";
    case CW_BALANCED: return "balanced";
    case CW_EXPLICIT: return "explicit";
  }
  return "?";
}

#define CW_SYNTAX "expected none, mura, balanced or '0:W0,1:W1'"

/* One "C:W" item starting at s; *next is past it (at ',' or the end). */
static int parse_item(const char *text, const char *s, int *cls, double *w, const char **next, mskx_err *e) {
  if ((s[0] != '0' && s[0] != '1') || s[1] != ':')
    return err_set(e, MSKX_EINVAL, "class weights '%.80s': bad class at offset %d (classes are 0 and 1; " CW_SYNTAX ")",
                   text, (int)(s - text));
  *cls = s[0] - '0';
  const char *v = s + 2;
  char *end;
  errno = 0;
  /* strtod would skip leading blanks and accept "inf"/"nan"; a weight starts with a digit or '.'. */
  if (!((*v >= '0' && *v <= '9') || *v == '.'))
    return err_set(e, MSKX_EINVAL, "class weights '%.80s': missing or malformed weight for class %d", text, *cls);
  *w = strtod(v, &end);
  int plain = end > v;
  for (const char *q = v; q < end; q++) plain &= strchr("0123456789.eE+-", *q) != NULL; /* no hex floats */
  if (!plain || errno || (*end != ',' && *end != '\0'))
    return err_set(e, MSKX_EINVAL, "class weights '%.80s': malformed weight for class %d", text, *cls);
  if (!isfinite(*w) || *w <= 0)
    return err_set(e, MSKX_EINVAL, "class weights '%.80s': weight of class %d must be > 0", text, *cls);
  *next = end;
  return MSKX_OK;
}

int cw_parse(const char *text, cw_spec *out, mskx_err *e) {
  cw_spec sp = {CW_NONE, {1.0, 1.0}};
  if (!text || !*text) return err_set(e, MSKX_EINVAL, "class weights: empty value (" CW_SYNTAX ")");
  if (!strcmp(text, "none")) sp.mode = CW_NONE;
  else if (!strcmp(text, "mura")) sp.mode = CW_MURA;
  else if (!strcmp(text, "balanced")) sp.mode = CW_BALANCED;
  else {
    int seen[2] = {0, 0};
    const char *s = text;
    for (int item = 0;; item++) {
      int cls = 0, rc;
      double w = 0;
      if (item == 2) return err_set(e, MSKX_EINVAL, "class weights '%.80s': more than two items", text);
      if ((rc = parse_item(text, s, &cls, &w, &s, e))) return rc;
      if (seen[cls]++) return err_set(e, MSKX_EINVAL, "class weights '%.80s': class %d given twice", text, cls);
      sp.w[cls] = w;
      if (!*s) break;
      s++; /* past ',' */
    }
    if (!seen[0] || !seen[1])
      return err_set(e, MSKX_EINVAL, "class weights '%.80s': class %d has no weight (give both: '0:W0,1:W1')", text,
                     seen[0] ? 1 : 0);
    sp.mode = CW_EXPLICIT;
  }
  *out = sp;
  return MSKX_OK;
}

static const char *part_name(const char *const *names, int p, char *buf, size_t n) {
  if (names && names[p]) return names[p];
  snprintf(buf, n, "#%d", p);
  return buf;
}

int cw_compute(const cw_spec *spec, const int64_t (*counts)[2], int n_parts, const char *const *part_names,
               double (*w)[2], mskx_err *e) {
  char nb[32];
  for (int p = 0; p < n_parts; p++)
    if (counts[p][0] < 0 || counts[p][1] < 0)
      return err_set(e, MSKX_EINVAL, "class weights: negative image count for part %s",
                     part_name(part_names, p, nb, sizeof nb));
  switch (spec->mode) {
    case CW_NONE:
    case CW_EXPLICIT:
      for (int p = 0; p < n_parts; p++) {
        w[p][0] = spec->mode == CW_NONE ? 1.0 : spec->w[0];
        w[p][1] = spec->mode == CW_NONE ? 1.0 : spec->w[1];
      }
      return MSKX_OK;
    case CW_MURA:
      for (int p = 0; p < n_parts; p++) {
        double nn = (double)counts[p][0], na = (double)counts[p][1];
        if (nn == 0 && na == 0) {
          w[p][0] = w[p][1] = 1.0;
          continue;
        }
        if (nn == 0 || na == 0)
          return err_set(e, MSKX_EINVAL,
                         "class weights 'mura': part %s has %s training images only, so the other class's weight "
                         "would be 0; use balanced, none or explicit weights",
                         part_name(part_names, p, nb, sizeof nb), nn == 0 ? "abnormal" : "normal");
        w[p][1] = nn / (na + nn);
        w[p][0] = na / (na + nn);
      }
      return MSKX_OK;
    case CW_BALANCED: {
      double n[2] = {0, 0};
      for (int p = 0; p < n_parts; p++) {
        n[0] += (double)counts[p][0];
        n[1] += (double)counts[p][1];
      }
      if (n[0] == 0 || n[1] == 0)
        return err_set(e, MSKX_EINVAL, "class weights 'balanced': the training images have no %s examples",
                       n[0] == 0 ? "normal" : "abnormal");
      for (int p = 0; p < n_parts; p++)
        for (int c = 0; c < 2; c++) w[p][c] = (n[0] + n[1]) / (2.0 * n[c]);
      return MSKX_OK;
    }
  }
  return err_set(e, MSKX_EINVAL, "class weights: unknown mode %d", (int)spec->mode);
}
