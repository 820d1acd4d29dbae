/* The files of a run folder: config.json, log.jsonl, last/best checkpoints
 * (see trainer.h). Everything is written atomically. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"
#include "train/train_internal.h"

#define CONFIG_NAME "config.json"

static int config_path(const char *dir, char *out, size_t n, mskx_err *e) {
  return path_join(out, n, dir, CONFIG_NAME, e);
}

/* config.json with the record of the learning-rate sweep: lr_find (JSON
 * text) when given, else, with keep, the one the existing file holds. */
static int write_config(const train_config *c, const char *lr_find, int keep, mskx_err *e) {
  char path[2048];
  int rc = config_path(c->out, path, sizeof path, e);
  if (rc) return rc;
  cJSON *sweep = lr_find ? cJSON_Parse(lr_find) : NULL;
  if (!sweep && keep && path_exists(path)) {
    unsigned char *old = NULL;
    size_t len;
    if (!file_read_all(path, 1 << 20, &old, &len, NULL)) {
      cJSON *o = cJSON_Parse((const char *)old);
      sweep = cJSON_DetachItemFromObjectCaseSensitive(o, "lr_find");
      cJSON_Delete(o);
    }
    free(old);
  }
  char *text = train_config_to_json(c);
  if (text && sweep) {
    cJSON *o = cJSON_Parse(text);
    free(text);
    text = NULL;
    if (o && cJSON_AddItemToObject(o, "lr_find", sweep)) sweep = NULL, text = cJSON_Print(o);
    cJSON_Delete(o);
  }
  cJSON_Delete(sweep);
  if (!text) return err_set(e, MSKX_ENOMEM, "out of memory");
  rc = file_write_atomic(path, text, strlen(text), e);
  free(text);
  return rc;
}

int run_dir_write_config(const train_config *c, mskx_err *e) { return write_config(c, NULL, 1, e); }

int run_dir_check(const train_config *c, int force, mskx_err *e) {
  char path[2048];
  int rc = config_path(c->out, path, sizeof path, e);
  if (rc) return rc;
  if (path_exists(path) && !force)
    return err_set(e, MSKX_EINVAL,
                   "%s already holds a training run (%s exists): use --resume %s to continue it, or --force to start over",
                   c->out, CONFIG_NAME, c->out);
  if (path_exists(c->out) && !path_is_dir(c->out)) return err_set(e, MSKX_EIO, "%s exists and is not a folder", c->out);
  return MSKX_OK;
}

int run_dir_prepare(const train_config *c, int force, const char *lr_find, mskx_err *e) {
  int rc = run_dir_check(c, force, e);
  if (rc || (rc = mkdir_p(c->out, e))) return rc;
  if (force) {
    /* A fresh run must not resume from, or be mistaken for, the old one's files. */
    static const char *const old[] = {"last.safetensors", "best.safetensors", "log.jsonl", "bundle.json",
                                      "lr_find.csv", "lr_find.png"};
    for (size_t i = 0; i < sizeof old / sizeof old[0]; i++) {
      char p[2048];
      if ((rc = path_join(p, sizeof p, c->out, old[i], e))) return rc;
      if (remove(p) != 0 && errno != ENOENT)
        return err_set(e, MSKX_EIO, "%s: cannot remove the old run's file (--force): %s", p, strerror(errno));
    }
  }
  return write_config(c, lr_find, 0, e);
}

/* "<file>.tmp.<digits>" where file is one that a run writes (cache files end in .mskxcache). */
static int is_run_temp(const char *name) {
  static const char *const files[] = {CONFIG_NAME, "log.jsonl", "last.safetensors", "best.safetensors", "bundle.json"};
  const char *t = strstr(name, ATOMIC_TMP_INFIX);
  if (!t) return 0;
  const char *pid = t + strlen(ATOMIC_TMP_INFIX);
  if (!*pid || strspn(pid, "0123456789") != strlen(pid)) return 0;
  size_t base = (size_t)(t - name), ext = strlen(".mskxcache");
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
    if (base == strlen(files[i]) && !strncmp(name, files[i], base)) return 1;
  return base > ext && !strncmp(t - ext, ".mskxcache", ext);
}

/* One folder; sub: also its subfolders (per-part runs), one level deep. */
static int remove_temps_in(const char *dir, int sub, int *removed, char *names, size_t n, mskx_err *e) {
  DIR *d = opendir(dir);
  if (!d) return err_set(e, MSKX_EIO, "%s: cannot list: %s", dir, strerror(errno));
  int rc = MSKX_OK;
  for (struct dirent *de; !rc && (de = readdir(d));) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    char path[4096];
    if (path_join(path, sizeof path, dir, de->d_name, NULL)) continue;
    if (is_run_temp(de->d_name)) {
      if (remove(path) != 0 && errno != ENOENT) {
        rc = err_set(e, MSKX_EIO, "%s: cannot remove a stale temporary file: %s", path, strerror(errno));
        break;
      }
      size_t used = strlen(names);
      if (used < n) snprintf(names + used, n - used, "%s%s", *removed ? ", " : "", path);
      (*removed)++;
    } else if (sub && path_is_dir(path)) {
      rc = remove_temps_in(path, 0, removed, names, n, e);
    }
  }
  closedir(d);
  return rc;
}

int run_dir_remove_temps(const char *dir, int *removed, char *names, size_t n, mskx_err *e) {
  *removed = 0;
  if (n) names[0] = 0;
  return remove_temps_in(dir, 1, removed, names, n, e);
}

int run_dir_read_config(const char *dir, train_config *c, mskx_err *e) {
  char path[2048];
  int rc = config_path(dir, path, sizeof path, e);
  if (rc) return rc;
  if (!path_exists(path)) return err_set(e, MSKX_EIO, "%s: no training run here (%s is missing)", dir, CONFIG_NAME);
  unsigned char *text;
  size_t len;
  if ((rc = file_read_all(path, 1 << 20, &text, &len, e))) return rc;
  rc = train_config_from_json((const char *)text, path, c, e);
  free(text);
  if (!rc) snprintf(c->out, sizeof c->out, "%s", dir);  /* the folder may have moved */
  return rc;
}

int run_paths(run_ctx *r, mskx_err *e) {
  int rc = path_join(r->last_path, sizeof r->last_path, r->dir, "last.safetensors", e);
  if (!rc) rc = path_join(r->best_path, sizeof r->best_path, r->dir, "best.safetensors", e);
  if (!rc) rc = path_join(r->log_path, sizeof r->log_path, r->dir, "log.jsonl", e);
  return rc;
}

static cJSON *val_json(const epoch_stats *st) {
  cJSON *o = cJSON_CreateObject();
  json_add_finite(o, "loss", st->val_loss);
  json_add_finite(o, "kappa", st->val_kappa);
  json_add_finite(o, "auc", st->val_auc);
  json_add_finite(o, "accuracy", st->val_accuracy);
  cJSON *parts = cJSON_AddObjectToObject(o, "parts");
  for (int p = 0; p < st->n_parts; p++) {
    cJSON *q = cJSON_AddObjectToObject(parts, st->parts[p].name);
    cJSON_AddNumberToObject(q, "n_studies", st->parts[p].n);
    json_add_finite(q, "kappa", st->parts[p].kappa);
    json_add_finite(q, "auc", st->parts[p].auc);
    json_add_finite(q, "accuracy", st->parts[p].accuracy);
  }
  return o;
}

char *epoch_metrics_json(const epoch_stats *st) {
  cJSON *o = val_json(st);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

int log_append(run_ctx *r, int epoch, const epoch_stats *st, int improved, mskx_err *e) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "epoch", epoch + 1);
  if (r->part_label) cJSON_AddStringToObject(o, "part", r->part_label);
  json_add_finite(o, "lr", st->lr);
  if (epoch == 0 && r->cfg.lr_auto) {
    /* --lr auto: the rate the finder chose (its sweep is in config.json). */
    cJSON *f = cJSON_AddObjectToObject(o, "lr_find");
    json_add_finite(f, "chosen", r->cfg.optim.lr);
    json_add_finite(f, "steepest", r->cfg.lr_found_steepest);
    json_add_finite(f, "min_tenth", r->cfg.lr_found_min_tenth);
  }
  json_add_finite(o, "train_loss", st->train_loss);
  cJSON_AddItemToObject(o, "val", val_json(st));
  json_add_finite(o, "images_per_s", st->images_per_s);
  if (st->ranks > 1) {
    cJSON_AddNumberToObject(o, "processes", st->ranks);
    json_add_finite(o, "comm_seconds", st->comm_seconds);
    json_add_finite(o, "comm_share", st->train_seconds > 0 ? st->comm_seconds / st->train_seconds : NAN);
  }
  json_add_finite(o, "seconds", st->seconds);
  /* Planning overhead of the epoch (train <-> validation plans). */
  cJSON *pl = cJSON_AddObjectToObject(o, "plan");
  cJSON_AddNumberToObject(pl, "built", (double)st->plans_built);
  cJSON_AddNumberToObject(pl, "reused", (double)st->plans_reused);
  cJSON_AddNumberToObject(pl, "primitives", (double)st->prims_created);
  cJSON_AddNumberToObject(pl, "page_faults", (double)st->page_faults);
  json_add_finite(pl, "seconds", st->plan_seconds);
  /* What keeping the validation plan resident costs: the RSS it added when built. */
  cJSON_AddBoolToObject(pl, "resident", net_has_parked(r->net));
  cJSON_AddNumberToObject(pl, "valid_plan_mb", round((double)r->valid_plan_bytes / 1048576.0));
  cJSON_AddStringToObject(o, "precision", precision_name(r->net->cx.prec));
  cJSON_AddBoolToObject(o, "decoded_cache", r->use_cache);
  cJSON_AddNumberToObject(o, "skipped_images", (double)st->skipped);
  cJSON_AddBoolToObject(o, "best", improved);
  char *line = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!line) return err_set(e, MSKX_ENOMEM, "out of memory");
  size_t old = r->log_text ? strlen(r->log_text) : 0, add = strlen(line);
  char *t = realloc(r->log_text, old + add + 2);
  if (!t) {
    free(line);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  memcpy(t + old, line, add);
  t[old + add] = '\n';
  t[old + add + 1] = 0;
  r->log_text = t;
  free(line);
  return file_write_atomic(r->log_path, t, old + add + 1, e);
}

/* Keeps the first n lines of the existing log (those of checkpointed epochs). */
static int log_restore(run_ctx *r, int n, mskx_err *e) {
  unsigned char *text = NULL;
  size_t len = 0;
  if (path_exists(r->log_path)) {
    int rc = file_read_all(r->log_path, 64 << 20, &text, &len, e);
    if (rc) return rc;
  }
  size_t cut = 0;
  for (int lines = 0; cut < len && lines < n; cut++)
    if (text[cut] == '\n') lines++;
  r->log_text = malloc(cut + 1);
  if (!r->log_text) {
    free(text);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  if (cut) memcpy(r->log_text, text, cut);
  r->log_text[cut] = 0;
  free(text);
  return MSKX_OK;
}

int checkpoint_save(run_ctx *r, const model_meta *meta, mskx_err *e) {
  tensor_ref st[OPTIM_MAX_STATE];
  int n = optim_state_tensors(r->opt, st);
  char names[OPTIM_MAX_STATE][96];
  for (int i = 0; i < n; i++) {
    snprintf(names[i], sizeof names[i], "%s%s", TRAIN_STATE_PREFIX, st[i].name);
    st[i].name = names[i];
  }
  schedule_state ss;
  schedule_get_state(r->sched, &ss);
  char sched_text[512];
  int rc = schedule_state_format(&ss, sched_text, sizeof sched_text, e);
  if (rc) return rc;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "epochs_done", r->st.epochs_done);
  cJSON_AddNumberToObject(o, "best_epoch", r->st.best_epoch);
  cJSON_AddNumberToObject(o, "best_value", isfinite(r->st.best_value) ? r->st.best_value : 0);
  cJSON_AddNumberToObject(o, "best_kappa", isfinite(r->st.best_kappa) ? r->st.best_kappa : 0);
  cJSON_AddNumberToObject(o, "bad_epochs", r->st.bad_epochs);
  cJSON_AddBoolToObject(o, "finished", r->st.finished);
  cJSON_AddBoolToObject(o, "early_stopped", r->st.early_stopped);
  cJSON_AddNumberToObject(o, "skipped_images", (double)r->st.skipped);
  /* The precision trained in: --precision auto resumes in the same one. */
  cJSON_AddStringToObject(o, "precision", precision_name(r->net->cx.prec));
  /* Cached pixels are rounded to 8 bits: a resumed run must read the same. */
  cJSON_AddBoolToObject(o, "cache", r->use_cache);
  char step[OPTIM_STEPS_TEXT_MAX];
  if ((rc = optim_steps_format(r->opt, step, sizeof step, e))) {
    cJSON_Delete(o);
    return rc;
  }
  cJSON_AddStringToObject(o, "optim_step", step);
  cJSON_AddStringToObject(o, "schedule", sched_text);
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!text) return err_set(e, MSKX_ENOMEM, "out of memory");
  st_meta extra[1] = {{"train_state", text}};
  rc = model_save(r->last_path, r->net, meta, st, n, extra, 1, e);
  free(text);
  return rc;
}

static int json_int(const cJSON *o, const char *k, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  /* A cast of a double outside int's range is undefined behaviour. */
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < INT_MIN ||
      v->valuedouble > INT_MAX)
    return 0;
  *out = (int)v->valuedouble;
  return 1;
}

static int restore_state(run_ctx *r, const char *text, mskx_err *e) {
  cJSON *o = cJSON_Parse(text);
  const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "optim_step"),
              *sched = cJSON_GetObjectItemCaseSensitive(o, "schedule"),
              *bv = cJSON_GetObjectItemCaseSensitive(o, "best_value"),
              *bk = cJSON_GetObjectItemCaseSensitive(o, "best_kappa");
  int ok = o && json_int(o, "epochs_done", &r->st.epochs_done) && json_int(o, "best_epoch", &r->st.best_epoch) &&
           json_int(o, "bad_epochs", &r->st.bad_epochs) && cJSON_IsString(step) && cJSON_IsString(sched) &&
           cJSON_IsNumber(bv) && cJSON_IsNumber(bk);
  int rc = ok ? MSKX_OK : err_set(e, MSKX_EFORMAT, "%s: training state is incomplete", r->last_path);
  if (!rc) {
    r->st.best_value = bv->valuedouble;
    r->st.best_kappa = bk->valuedouble;
    r->st.finished = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "finished"));
    r->st.early_stopped = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "early_stopped"));
    const cJSON *sk = cJSON_GetObjectItemCaseSensitive(o, "skipped_images");
    /* A cast of a double outside long long's range is undefined behaviour;
     * counts up to 2^53 are exact in a double. Absent (older files): 0. */
    if (sk && !(cJSON_IsNumber(sk) && sk->valuedouble >= 0 && sk->valuedouble <= 9007199254740992.0 &&
                sk->valuedouble == floor(sk->valuedouble)))
      rc = err_set(e, MSKX_EFORMAT, "%s: training state: skipped_images must be a whole number >= 0", r->last_path);
    else
      r->st.skipped = sk ? (long long)sk->valuedouble : 0;
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(o, "precision");
    const cJSON *ca = cJSON_GetObjectItemCaseSensitive(o, "cache");
    /* Checkpoints from before the automatic cache used it only with --cache. */
    r->cache_resumed = cJSON_IsBool(ca) ? cJSON_IsTrue(ca) : 0;
    if (cJSON_IsString(pr)) r->prec_resumed = strcmp(pr->valuestring, "bf16") ? PREC_FP32 : PREC_BF16;
    if (!rc) rc = optim_steps_parse(r->opt, step->valuestring, e);
  }
  schedule_state ss;
  if (!rc) rc = schedule_state_parse(sched->valuestring, &ss, e);
  if (!rc) rc = schedule_set_state(r->sched, &ss, e);
  cJSON_Delete(o);
  return rc;
}

int checkpoint_load(run_ctx *r, mskx_err *e) {
  if (!path_exists(r->last_path)) {
    /* Interrupted before the first checkpoint: start from scratch. */
    return log_restore(r, 0, e);
  }
  st_file *f = NULL;
  int rc = st_read(r->last_path, &f, e);
  const char *state = rc ? NULL : st_meta_get(f, "train_state");
  if (!rc && !state) rc = err_set(e, MSKX_EFORMAT, "%s: not a training checkpoint (no train_state)", r->last_path);
  /* The weights (the load skips the training-state tensors), then the
   * optimizer state (TRAIN_STATE_PREFIX + its names). */
  if (!rc) rc = net_load_tensors(r->net, f, r->last_path, 0, e);
  /* A run started from Keras weights keeps their batch-norm epsilon. */
  if (!rc) rc = model_bn_eps_read(f, r->last_path, &r->net->cx.bn_eps, e);
  if (!rc) rc = optim_state_load(r->opt, f, TRAIN_STATE_PREFIX, e);
  if (!rc) rc = restore_state(r, state, e);
  if (!rc) rc = log_restore(r, r->st.epochs_done, e);
  st_free(f);
  return rc;
}
