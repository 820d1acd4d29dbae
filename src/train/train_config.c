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
}

int train_config_validate(const train_config *c, mskx_err *e) {
  if (!c->data[0]) return err_set(e, MSKX_EINVAL, "--data is required");
  if (!c->out[0]) return err_set(e, MSKX_EINVAL, "--out is required");
  arch_spec a;
  int rc = arch_parse(c->arch, &a, e);
  if (rc) return err_prefix(e, "--arch");
  if (!(c->aux_weight >= 0 && c->aux_weight <= 100)) return err_set(e, MSKX_EINVAL, "--aux-weight must be in 0..100");
  int aux = arch_has_aux(&a) && c->aux_weight > 0;
  int minsz = arch_min_size(&a, aux), mult = arch_size_multiple(&a);
  if (c->size > 2048)
    return err_set(e, MSKX_EINVAL, "--size %d: at most 2048", c->size);
  if (c->size < minsz) {
    if (aux)
      return err_set(e, MSKX_EINVAL,
                     "--size %d: %s needs at least %d with its auxiliary classifier (--aux-weight 0 allows %d)",
                     c->size, c->arch, minsz, arch_min_size(&a, 0));
    return err_set(e, MSKX_EINVAL, "--size %d: %s needs at least %d (and at most 2048)", c->size, c->arch, minsz);
  }
  if (c->size % mult)
    return err_set(e, MSKX_EINVAL, "--size %d: %s needs a multiple of %d", c->size, c->arch, mult);
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
    FI("centered", optim.centered),
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
    FI("strict", strict),
    FD("max_skipped", max_skipped),
    FI("cache", cache),
    FI("max_batches", max_batches),
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
