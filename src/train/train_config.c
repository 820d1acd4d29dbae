/* Training configuration: defaults (the MURA paper's recipe), validation and
 * the config.json round trip. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "models/net.h"
#include "train/class_weights.h"
#include "train/trainer.h"

/* MURA paper (Rajpurkar et al. 2017, section 3): batch 8, Adam lr 1e-4,
 * lr / 10 on validation-loss plateau, 320x320 inputs. */
#define PAPER_BATCH 8
#define PAPER_LR 1e-4
#define PAPER_SIZE 320
/* A few unreadable files in a large dataset are tolerated (and reported); a
 * larger share means a broken dataset or disk, not a few bad scans. */
#define DEFAULT_MAX_SKIPPED 0.01

void train_config_default(train_config *c) {
  memset(c, 0, sizeof *c);
  strcpy(c->arch, "densenet169");
  strcpy(c->parts, "all");
  c->size = PAPER_SIZE;
  c->batch = PAPER_BATCH;
  c->epochs = 10;
  c->threads = 0;
  c->loader_threads = 2;
  c->seed = 0;
  optim_config_defaults("adam", &c->optim, NULL);
  c->optim.lr = PAPER_LR;
  schedule_config_defaults("plateau", PAPER_LR, &c->sched, NULL);
  strcpy(c->sched.monitor, "val_loss");
  c->sched.factor = 0.1;
  c->sched.patience = 1;
  strcpy(c->class_weights, "mura");
  c->prec = PREC_FP32;
  c->aux_weight = INCEPTION_AUX_WEIGHT;
  strcpy(c->select, "kappa");
  c->aug = aug_mura_default();
  c->max_skipped = DEFAULT_MAX_SKIPPED;
  strcpy(c->dicom_window, "auto");
  strcpy(c->dicom_frames, "all");
}

int train_config_dicom(const train_config *c, dicom_options *o, mskx_err *e) {
  memset(o, 0, sizeof *o);
  int rc = dicom_options_parse_window(c->dicom_window, o, e);
  if (!rc) rc = dicom_options_parse_frames(c->dicom_frames, o, e);
  return rc;
}

/* ---- arch maps ---- */

typedef struct map_entry {
  char part[64];               /* "" for the default entry */
  char arch[TRAIN_ARCH_MAX];
} map_entry;

static int is_part_key(const char *t, size_t len) {
  if (len == 0 || len >= 64 || !isupper((unsigned char)t[0])) return 0;
  for (size_t i = 0; i < len; i++)
    if (!isupper((unsigned char)t[i]) && !isdigit((unsigned char)t[i]) && t[i] != '_') return 0;
  return 1;
}

/* The entries of an arch string (one default entry when it names no part);
 * *out malloc'd. */
static int map_parse(const char *s, map_entry **out, int *n, mskx_err *e) {
  *out = NULL;
  *n = 0;
  size_t len = strlen(s);
  if (len == 0) return err_set(e, MSKX_EINVAL, "--arch is empty");
  if (len >= TRAIN_ARCH_MAX) return err_set(e, MSKX_EINVAL, "--arch is too long");
  map_entry *m = calloc(TRAIN_ARCH_MAP_MAX, sizeof *m);
  char *buf = malloc(len + 1);
  if (!m || !buf) {
    free(m);
    free(buf);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  memcpy(buf, s, len + 1);
  int k = 0, rc = MSKX_OK;
  char *p = buf;
  while (!rc) {
    char *comma = strchr(p, ',');
    if (comma) *comma = 0;
    char *eq = strchr(p, '=');
    if (!*p) {
      rc = err_set(e, MSKX_EINVAL, "--arch %s: an empty entry", s);
    } else if ((eq && is_part_key(p, (size_t)(eq - p))) || strchr(p, ':') || !eq) {
      int named = eq && is_part_key(p, (size_t)(eq - p));
      const char *a = named ? eq + 1 : p;
      if (k == TRAIN_ARCH_MAP_MAX) {
        rc = err_set(e, MSKX_EINVAL, "--arch: more than %d entries", TRAIN_ARCH_MAP_MAX);
        break;
      }
      if (named) snprintf(m[k].part, sizeof m[k].part, "%.*s", (int)(eq - p), p);
      if (!*a) rc = err_set(e, MSKX_EINVAL, "--arch: %s has no architecture", m[k].part);
      snprintf(m[k].arch, sizeof m[k].arch, "%s", a);
      for (int j = 0; !rc && j < k; j++)
        if (!strcmp(m[j].part, m[k].part))
          rc = m[k].part[0] ? err_set(e, MSKX_EINVAL, "--arch: %s appears twice", m[k].part)
                            : err_set(e, MSKX_EINVAL, "--arch: two default entries (%s and %s); name the parts as "
                                      "PART=ARCH", m[j].arch, m[k].arch);
      k++;
    } else if (k == 0) {
      rc = err_set(e, MSKX_EINVAL, "--arch: '%s' is not an architecture", p);
    } else {  /* an option of the custom architecture before it */
      size_t used = strlen(m[k - 1].arch);
      snprintf(m[k - 1].arch + used, sizeof m[k - 1].arch - used, ",%s", p);
    }
    if (!comma) break;
    p = comma + 1;
  }
  free(buf);
  if (rc) {
    free(m);
    return rc;
  }
  *out = m;
  *n = k;
  return MSKX_OK;
}

int train_arch_is_map(const char *arch) {
  map_entry *m;
  int n;
  if (map_parse(arch, &m, &n, NULL)) return 0;
  int named = 0;
  for (int i = 0; i < n; i++) named |= m[i].part[0] != 0;
  free(m);
  return named;
}

/* A map key names a part as the dataset does ("XR_HAND") or without "XR_". */
static int key_matches(const char *key, const char *part) {
  return !strcmp(key, part) || (!strncmp(part, "XR_", 3) && !strcmp(key, part + 3));
}

int train_arch_for(const char *arch, const char *part, char *out, size_t n, mskx_err *e) {
  map_entry *m;
  int k, rc = map_parse(arch, &m, &k, e);
  if (rc) return rc;
  int hit = -1, dflt = -1, named = 0;
  for (int i = 0; i < k; i++) {
    named |= m[i].part[0] != 0;
    if (!m[i].part[0]) dflt = i;
    else if (part && key_matches(m[i].part, part)) hit = i;
  }
  if (!named) {  /* one architecture: the string as given */
    free(m);
    if (strlen(arch) >= n) return err_set(e, MSKX_EINVAL, "--arch is too long");
    strcpy(out, arch);
    return MSKX_OK;
  }
  if (hit < 0) hit = dflt;
  if (hit < 0)
    rc = part ? err_set(e, MSKX_EINVAL, "--arch: no architecture for %s and no default entry", part)
              : err_set(e, MSKX_EINVAL, "--arch: the map has no default entry");
  else if (strlen(m[hit].arch) >= n)
    rc = err_set(e, MSKX_EINVAL, "--arch: %s is too long", m[hit].arch);
  else
    strcpy(out, m[hit].arch);
  free(m);
  return rc;
}

static int check_arch(const char *arch, int size, double aux_weight, mskx_err *e) {
  arch_spec a;
  int rc = arch_parse(arch, &a, e);
  if (rc) return err_prefix(e, "--arch");
  int aux = arch_has_aux(&a) && aux_weight > 0;
  int minsz = arch_min_size(&a, aux), mult = arch_size_multiple(&a);
  if (size > 2048) return err_set(e, MSKX_EINVAL, "--size %d: at most 2048", size);
  if (size < minsz) {
    if (aux)
      return err_set(e, MSKX_EINVAL,
                     "--size %d: %s needs at least %d with its auxiliary classifier (--aux-weight 0 allows %d)", size,
                     arch, minsz, arch_min_size(&a, 0));
    return err_set(e, MSKX_EINVAL, "--size %d: %s needs at least %d (and at most 2048)", size, arch, minsz);
  }
  if (size % mult) return err_set(e, MSKX_EINVAL, "--size %d: %s needs a multiple of %d", size, arch, mult);
  return MSKX_OK;
}

int train_config_validate(const train_config *c, mskx_err *e) {
  if (!c->data[0]) return err_set(e, MSKX_EINVAL, "--data is required");
  if (!c->out[0]) return err_set(e, MSKX_EINVAL, "--out is required");
  if (!(c->aux_weight >= 0 && c->aux_weight <= 100)) return err_set(e, MSKX_EINVAL, "--aux-weight must be in 0..100");
  map_entry *m;
  int k, rc = map_parse(c->arch, &m, &k, e);
  if (rc) return rc;
  int named = 0;
  for (int i = 0; i < k; i++) named |= m[i].part[0] != 0;
  if (!named) rc = check_arch(c->arch, c->size, c->aux_weight, e);
  for (int i = 0; named && !rc && i < k; i++)
    if ((rc = check_arch(m[i].arch, c->size, c->aux_weight, e)) && m[i].part[0]) err_prefix(e, "%s", m[i].part);
  free(m);
  if (rc) return rc;
  if (named && !c->per_part)
    return err_set(e, MSKX_EINVAL, "--arch %s: an arch map (PART=ARCH entries) needs --per-part", c->arch);
  if (c->batch < 1 || c->batch > 4096) return err_set(e, MSKX_EINVAL, "--batch %d: must be in 1..4096", c->batch);
  if (c->epochs < 1 || c->epochs > 100000) return err_set(e, MSKX_EINVAL, "--epochs %d: must be positive", c->epochs);
  if (c->threads < 0 || c->loader_threads < 1) return err_set(e, MSKX_EINVAL, "thread counts must be positive");
  if ((rc = optim_config_validate(&c->optim, e))) return rc;
  if ((rc = schedule_config_validate(&c->sched, e))) return rc;
  cw_spec cw;
  if ((rc = cw_parse(c->class_weights, &cw, e))) return err_prefix(e, "--class-weights");
  if (strcmp(c->select, "kappa") && strcmp(c->select, "loss"))
    return err_set(e, MSKX_EINVAL, "--select %s: expected kappa or loss", c->select);
  if (c->early_stop < 0) return err_set(e, MSKX_EINVAL, "--early-stop must be >= 0");
  if (c->freeze_backbone_epochs < 0) return err_set(e, MSKX_EINVAL, "--freeze-backbone-epochs must be >= 0");
  if (c->max_batches < 0) return err_set(e, MSKX_EINVAL, "--max-batches must be >= 0");
  if (!(c->max_skipped >= 0 && c->max_skipped <= 1))
    return err_set(e, MSKX_EINVAL, "--max-skipped %g: must be a fraction in [0, 1]", c->max_skipped);
  dicom_options dopt;
  if ((rc = train_config_dicom(c, &dopt, e))) return rc;
  const aug_config *g = &c->aug;
  if (!(g->p_hflip >= 0 && g->p_hflip <= 1 && g->p_vflip >= 0 && g->p_vflip <= 1))
    return err_set(e, MSKX_EINVAL, "flip probabilities must be in [0, 1]");
  if (!(g->rotate_deg >= 0 && g->rotate_deg <= 180 && g->shift_frac >= 0 && g->shift_frac < 1 && g->zoom >= 0 &&
        g->zoom < 1 && g->brightness >= 0 && g->brightness <= 1 && g->contrast >= 0 && g->contrast < 1))
    return err_set(e, MSKX_EINVAL, "augmentation ranges out of bounds (rotate 0..180, shift/zoom/contrast 0..1)");
  return MSKX_OK;
}

/* ---- JSON ---- */

typedef enum { F_STR, F_INT, F_DBL, F_U64, F_FLT } ftype;
typedef struct field {
  const char *key;
  ftype t;
  size_t off, size;
} field;

#define FS(k, m) {k, F_STR, offsetof(train_config, m), sizeof(((train_config *)0)->m)}
#define FI(k, m) {k, F_INT, offsetof(train_config, m), 0}
#define FD(k, m) {k, F_DBL, offsetof(train_config, m), 0}
#define FF(k, m) {k, F_FLT, offsetof(train_config, m), 0}

static const field fields[] = {
    FS("data", data),
    FS("arch", arch),
    FS("out", out),
    FS("parts", parts),
    FI("per_part", per_part),
    FI("size", size),
    FI("batch", batch),
    FI("epochs", epochs),
    FI("threads", threads),
    FI("loader_threads", loader_threads),
    {"seed", F_U64, offsetof(train_config, seed), 0},
    FS("optimizer", optim.name),
    FD("lr", optim.lr),
    FD("beta1", optim.beta1),
    FD("beta2", optim.beta2),
    FD("eps", optim.eps),
    FD("weight_decay", optim.weight_decay),
    FD("momentum", optim.momentum),
    FI("nesterov", optim.nesterov),
    FD("rho", optim.rho),
    FS("schedule", sched.name),
    FD("schedule_lr0", sched.lr0),
    FD("drop", sched.drop),
    FD("epochs_drop", sched.epochs_drop),
    FS("monitor", sched.monitor),
    FD("factor", sched.factor),
    FD("min_delta", sched.min_delta),
    FI("patience", sched.patience),
    FI("cooldown", sched.cooldown),
    FD("min_lr", sched.min_lr),
    FI("schedule_epochs", sched.epochs),
    FD("warmup_epochs", sched.warmup_epochs),
    FS("class_weights", class_weights),
    FS("pretrained", pretrained),
    FI("freeze_backbone_epochs", freeze_backbone_epochs),
    FD("aux_weight", aux_weight),
    FI("precision_bf16", prec),
    FI("early_stop", early_stop),
    FS("select", select),
    FF("aug_hflip", aug.p_hflip),
    FF("aug_vflip", aug.p_vflip),
    FF("aug_rotate", aug.rotate_deg),
    FF("aug_shift", aug.shift_frac),
    FF("aug_zoom", aug.zoom),
    FF("aug_brightness", aug.brightness),
    FF("aug_contrast", aug.contrast),
    FI("keep_aspect", keep_aspect),
    FS("dicom_window", dicom_window),
    FS("dicom_frames", dicom_frames),
    FI("strict", strict),
    FD("max_skipped", max_skipped),
    FI("cache", cache),
    FI("max_batches", max_batches),
    FI("lr_auto", lr_auto),
    FD("lr_found_steepest", lr_found_steepest),
    FD("lr_found_min_tenth", lr_found_min_tenth),
};

char *train_config_to_json(const train_config *c) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "format", "mskx-train-config-1");
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    const void *p = (const char *)c + fields[i].off;
    switch (fields[i].t) {
      case F_STR: cJSON_AddStringToObject(o, fields[i].key, (const char *)p); break;
      case F_INT: cJSON_AddNumberToObject(o, fields[i].key, *(const int *)p); break;
      case F_DBL: cJSON_AddNumberToObject(o, fields[i].key, *(const double *)p); break;
      case F_FLT: cJSON_AddNumberToObject(o, fields[i].key, *(const float *)p); break;
      case F_U64: {
        char buf[32];
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)*(const uint64_t *)p);
        cJSON_AddStringToObject(o, fields[i].key, buf);
        break;
      }
    }
  }
  char *s = cJSON_Print(o);
  cJSON_Delete(o);
  return s;
}

int train_config_from_json(const char *text, const char *path, train_config *c, mskx_err *e) {
  train_config_default(c);
  cJSON *o = cJSON_Parse(text);
  if (!o || !cJSON_IsObject(o)) {
    cJSON_Delete(o);
    return err_set(e, MSKX_EFORMAT, "%s: not a JSON object", path);
  }
  const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(o, "format");
  if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "mskx-train-config-1")) {
    cJSON_Delete(o);
    return err_set(e, MSKX_EFORMAT, "%s: not an mskx training configuration", path);
  }
  int rc = MSKX_OK;
  for (size_t i = 0; i < sizeof fields / sizeof fields[0] && !rc; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, fields[i].key);
    void *p = (char *)c + fields[i].off;
    if (!v) continue;  /* keys added later keep their defaults */
    if (fields[i].t == F_STR || fields[i].t == F_U64) {
      if (!cJSON_IsString(v)) {
        rc = err_set(e, MSKX_EFORMAT, "%s: '%s' must be a string", path, fields[i].key);
      } else if (fields[i].t == F_STR) {
        if (strlen(v->valuestring) >= fields[i].size)
          rc = err_set(e, MSKX_EFORMAT, "%s: '%s' is too long", path, fields[i].key);
        else
          strcpy((char *)p, v->valuestring);
      } else {
        const char *s = v->valuestring;
        char *end = NULL;
        errno = 0;
        unsigned long long u = strtoull(s, &end, 10);
        if (!isdigit((unsigned char)s[0]) || *end || errno == ERANGE)
          rc = err_set(e, MSKX_EFORMAT, "%s: '%s' must be an unsigned decimal integer", path, fields[i].key);
        else
          *(uint64_t *)p = (uint64_t)u;
      }
    } else if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
      rc = err_set(e, MSKX_EFORMAT, "%s: '%s' must be a number", path, fields[i].key);
    } else if (fields[i].t == F_INT) {
      /* A cast of a double outside int's range is undefined behaviour. */
      double d = v->valuedouble;
      if (d != floor(d) || d < INT_MIN || d > INT_MAX)
        rc = err_set(e, MSKX_EFORMAT, "%s: '%s' must be an integer in int's range", path, fields[i].key);
      else
        *(int *)p = (int)d;
    } else if (fields[i].t == F_DBL) {
      *(double *)p = v->valuedouble;
    } else {
      *(float *)p = (float)v->valuedouble;
    }
  }
  cJSON_Delete(o);
  return rc;
}
