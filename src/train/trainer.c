/* The training loop (see trainer.h): epochs of shuffled, augmented batches,
 * study-level validation after each epoch, schedule and early stopping,
 * atomic checkpoints that make an interrupted run resumable bit-exactly. */
#include "train/trainer.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "core/error.h"
#include "core/util.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "models/import.h"
#include "models/model_file.h"
#include "train/class_weights.h"
#include "train/lr_find.h"
#include "train/train_internal.h"

int run_cancelled(const run_ctx *r) { return r->cancel && *r->cancel; }

int run_cancel_error(const run_ctx *r, int epoch, mskx_err *e) {
  if (r->st.epochs_done == 0)
    return err_set(e, MSKX_ECANCELED, "stopped during epoch %d of %d, before any epoch was saved", epoch + 1,
                   r->cfg.epochs);
  return err_set(e, MSKX_ECANCELED, "stopped during epoch %d of %d; epoch %d is saved in %s", epoch + 1, r->cfg.epochs,
                 r->st.epochs_done, r->last_path);
}

static void notify(run_ctx *r, int phase, int epoch, int b, int nb, double ips, double loss, double lr, double eta,
                   const char *text) {
  if (!r->fn) return;
  train_progress p = {phase, r->part_label, epoch, r->cfg.epochs, b, nb, ips, loss, lr, eta, text};
  r->fn(r->ctx, &p);
}

/* Parses "all" or a comma list of part names into a loader part mask. */
static int parts_mask(const dataset *d, const char *parts, uint64_t *mask, mskx_err *e) {
  *mask = 0;
  if (!strcmp(parts, "all")) return MSKX_OK;
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", parts);
  char *save = NULL;
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    int p = dataset_part_index(d, t);
    if (p < 0) return err_set(e, MSKX_EINVAL, "--parts: '%s' is not a part of this dataset", t);
    if (p >= DS_MAX_PARTS) return err_set(e, MSKX_EUNSUPPORTED, "--parts: at most %d parts can be selected", DS_MAX_PARTS);
    *mask |= 1ULL << p;
  }
  return MSKX_OK;
}

static int in_mask(uint64_t mask, int part) { return mask == 0 || (part < DS_MAX_PARTS && (mask >> part) & 1); }

/* Per-part runs train one model for each selected part that has training images. */
static int trains_part(const dataset *d, uint64_t mask, int part) {
  if (!in_mask(mask, part)) return 0;
  ds_counts k = dataset_count(&d->train, part);
  return k.images[0] + k.images[1] > 0;
}

/* Class weights per part from the selected training images. */
static int setup_class_weights(run_ctx *r, mskx_err *e) {
  const dataset *d = r->data;
  cw_spec spec;
  int rc = cw_parse(r->cfg.class_weights, &spec, e);
  if (rc) return err_prefix(e, "--class-weights");
  int64_t(*counts)[2] = calloc((size_t)d->n_parts, sizeof *counts);
  r->cw = calloc((size_t)d->n_parts, sizeof *r->cw);
  if (!counts || !r->cw) {
    free(counts);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  int64_t total[2] = {0, 0};
  for (int p = 0; p < d->n_parts; p++) {
    if (!in_mask(r->mask, p)) continue;
    ds_counts c = dataset_count(&d->train, p);
    counts[p][0] = c.images[0];
    counts[p][1] = c.images[1];
    total[0] += c.images[0];
    total[1] += c.images[1];
  }
  if (total[0] == 0 || total[1] == 0) {
    free(counts);
    return err_set(e, MSKX_EINVAL, "the training split of the selected parts has only %s images: both classes are needed",
                   total[0] ? "normal" : "abnormal");
  }
  rc = cw_compute(&spec, (const int64_t(*)[2])counts, d->n_parts, (const char *const *)d->parts, r->cw, e);
  free(counts);
  return rc;
}

/* The decoded cache without --cache: when both splits' decoded images
 * (S x S bytes each) fit the budget (--cache-budget MB, by default a quarter
 * of the memory available now), they are decoded once instead of every
 * epoch. A resumed run keeps its checkpoint's choice (cached pixels are
 * rounded to 8 bits); data-parallel processes follow rank 0. */
#define CACHE_BUDGET_SHARE 4

static int decide_cache(run_ctx *r, mskx_err *e) {
  const train_config *c = &r->cfg;
  int use = c->cache;
  char text[256] = "";
  if (!use && r->cache_resumed >= 0) {
    use = r->cache_resumed;
  } else if (!use && c->cache_budget_mb != 0) {
    uint64_t px = (uint64_t)c->size * (uint64_t)c->size;
    uint64_t need = ((uint64_t)r->data->train.n_images + (uint64_t)r->data->valid.n_images) * px;
    uint64_t budget = c->cache_budget_mb > 0 ? (uint64_t)c->cache_budget_mb << 20 : mem_available_bytes() / CACHE_BUDGET_SHARE;
    use = need <= budget;
    if (use)
      snprintf(text, sizeof text,
               "decoded cache: %.0f MB of decoded images fit the budget of %.0f MB: each image is decoded once "
               "(--cache-budget 0 turns this off)",
               need / 1048576.0, budget / 1048576.0);
  }
  int32_t v = use;
  int rc = r->dist ? dist_bcast_bytes(r->dist, &v, sizeof v, e) : MSKX_OK;
  r->use_cache = v;
  if (!rc && v && text[0] && r->rank == 0) notify(r, TRAIN_PHASE_INFO, 0, 0, 0, 0, 0, 0, 0, text);
  return rc;
}

static int make_loaders(run_ctx *r, mskx_err *e) {
  const train_config *c = &r->cfg;
  loader_config lc = loader_config_default();
  lc.batch_size = r->local_batch;
  lc.image_size = c->size;
  lc.keep_aspect = c->keep_aspect;
  lc.threads = c->loader_threads;
  lc.shuffle = 1;
  lc.drop_last = 1;  /* constant batch shape: one plan, no tiny batch-norm batches */
  lc.strict = c->strict;
  lc.augment = !aug_is_identity(&c->aug);
  lc.aug = c->aug;
  lc.seed = c->seed;
  lc.norm = norm_imagenet();
  lc.part_mask = r->mask;
  int rc = train_config_dicom(c, &lc.limits.dicom, e);
  if (rc) return rc;
  /* Both orders are cut into interleaved shards: with drop_last, the shards
   * of global batch k together are the one-process batch k. */
  lc.shard_rank = r->rank;
  lc.shard_count = r->ranks;
  int rc0 = decide_cache(r, e);
  if (rc0) return rc0;
  if (r->use_cache) {
    /* Decoded, resized 8-bit images of each split in the run folder (shared by
     * per-part models), built once and memory-mapped afterwards. */
    cache_config cc = {.size = c->size, .keep_aspect = c->keep_aspect, .threads = c->loader_threads,
                       .limits = lc.limits};
    char path[2048];
    int rebuilt;
    rc = cache_default_path(path, sizeof path, c->out, "train", c->size, c->keep_aspect, e);
    if (!rc) rc = cache_open(path, &r->data->train, &cc, &r->ctrain, &rebuilt, e);
    if (!rc) rc = cache_default_path(path, sizeof path, c->out, "valid", c->size, c->keep_aspect, e);
    if (!rc) rc = cache_open(path, &r->data->valid, &cc, &r->cvalid, &rebuilt, e);
    if (rc) return rc;
  }
  lc.cache = r->ctrain;
  rc = loader_create(r->data, &r->data->train, &lc, &r->ltrain, e);
  if (rc) return rc;
  lc.shuffle = 0;
  lc.drop_last = 0;
  lc.augment = 0;
  lc.cache = r->cvalid;
  return loader_create(r->data, &r->data->valid, &lc, &r->lvalid, e);
}

static int fill_meta(const run_ctx *r, model_meta *m, int epoch, const char *metrics, mskx_err *e) {
  model_meta_default(m);
  int rc = str_copy_exact(m->arch, sizeof m->arch, r->cfg.arch, "--arch", e);
  if (!rc) rc = str_copy_exact(m->metrics, sizeof m->metrics, metrics ? metrics : "{}", "the epoch's metrics", e);
  if (rc) return rc;
  m->size = r->cfg.size;
  m->keep_aspect = r->cfg.keep_aspect;
  m->norm = norm_imagenet();
  snprintf(m->parts, sizeof m->parts, "%s", r->cfg.parts);
  m->epoch = epoch;
  m->bn_eps = layer_bn_eps(&r->net->cx);
  return MSKX_OK;
}

#define DIVERGED_MSG "training diverged: the loss is %g (lower the learning rate)"

/* Forward and backward of this process's share of a global batch of total
 * images: its loss gradient is scaled to its share of the global mean, so
 * the all-reduced sum is the global batch's gradient; *loss becomes the
 * global batch's. Any failure here leaves the others inside a collective. */
static int dist_pass(run_ctx *r, const batch *b, int total, double *loss, mskx_err *e) {
  net *m = r->net;
  int n = b->count;
  float share = (float)n / (float)total;
  net_scale_loss_grad(m, r->dz, n, share);
  grad_sync_begin(r->gsync);
  int rc = net_backward(m, r->dz, e);
  if (!rc) rc = grad_sync_finish(r->gsync, e);
  double l = *loss * n;
  if (!rc) rc = dist_sum(r->dist, &l, 1, e);
  if (rc) {
    dist_break(r->dist, e);
    return rc;
  }
  *loss = l / total;
  /* Every process sees the same global loss, so they stop together. */
  return isfinite(*loss) ? MSKX_OK : dist_agree(r->dist, err_set(e, MSKX_EINVAL, DIVERGED_MSG, *loss), e);
}

/* One optimisation step on a batch (this process's share of total images). */
int train_step(run_ctx *r, const batch *b, int total, double lr, int frozen, double *loss, mskx_err *e) {
  net *m = r->net;
  int n = b->count;
  for (int i = 0; i < n; i++) r->sw[i] = (float)r->cw[b->part_idx[i]][b->labels[i] > 0.5f];
  int rc = net_forward(m, b->images, r->logits, e);
  if (rc) {
    dist_break(r->dist, e);
    return rc;
  }
  *loss = net_loss(m, r->logits, b->labels, r->sw, n, r->dz);
  if (r->dist)
    rc = dist_pass(r, b, total, loss, e);
  else if (!isfinite(*loss))
    return err_set(e, MSKX_EINVAL, DIVERGED_MSG, *loss);
  else
    rc = net_backward(m, r->dz, e);
  if (rc) return rc;
  /* "Train only the head" is the classifier's tail slice (net_head_slice,
   * checked when the run was set up). */
  size_t off = 0;
  if (frozen) rc = net_head_slice(m, &off, e);
  int threads = engine_threads_enter(r->eng);  /* the optimizer's OpenMP loops */
  if (!rc)
    rc = frozen ? optim_step_range(r->opt, &m->ps, off, m->ps.n_params - off, lr, e) : optim_step(r->opt, &m->ps, lr, e);
  engine_threads_leave(threads);
  if (rc) dist_break(r->dist, e);  /* not agreed: the others go on to the next step's collectives */
  return rc;
}

/* Rank 0's weights and batch-norm buffers on every process: the same start,
 * and after each epoch the running statistics that rank 0 checkpoints (each
 * process keeps its own without --sync-bn). */
static int share_weights(run_ctx *r, mskx_err *e) {
  param_store *ps = &r->net->ps;
  int rc = dist_bcast_floats(r->dist, ps->params, ps->n_params, e);
  if (!rc) rc = dist_bcast_floats(r->dist, ps->buffers, ps->n_buffers, e);
  net_params_changed(r->net);
  return rc;
}

/* Unreadable training images are skipped, up to --max-skipped of an epoch's
 * images; an epoch that read none is an error whatever the limit. */
static int check_skipped(const run_ctx *r, int epoch, long long read, long long skipped, const loader_stats *ls,
                         mskx_err *e) {
  const char *last = ls->n_skip_msgs ? ls->skip_msgs[ls->n_skip_msgs - 1] : "";
  const char *sep = ls->n_skip_msgs ? "; the last: " : "";
  if (read == 0)
    return err_set(e, MSKX_EIO, "epoch %d: no training image could be read (%lld unreadable)%s%s", epoch + 1,
                   skipped, sep, last);
  double share = (double)skipped / (double)(read + skipped);
  if (share > r->cfg.max_skipped)
    return err_set(e, MSKX_EIO,
                   "epoch %d: %lld of %lld training images (%.1f%%) were unreadable, more than --max-skipped %g "
                   "allows%s%s",
                   epoch + 1, skipped, read + skipped, 100 * share, r->cfg.max_skipped, sep, last);
  return MSKX_OK;
}

static int run_train_epoch(run_ctx *r, int epoch, epoch_stats *st, mskx_err *e) {
  const train_config *c = &r->cfg;
  int rc = net_plan(r->net, r->local_batch, c->size, c->size, 1, c->prec, e);
  if (!rc) rc = loader_start_epoch(r->ltrain, epoch, e);
  /* Shards of equal size (drop_last): every process finds the same nb. */
  int nb = rc ? 0 : loader_epoch_batches(r->ltrain);
  if (c->max_batches && nb > c->max_batches) nb = c->max_batches;
  if (!rc && nb == 0) rc = err_set(e, MSKX_EINVAL, "the training split has fewer images than one batch (%d)", c->batch);
  if ((rc = dist_agree(r->dist, rc, e))) return rc;
  int frozen = epoch < c->freeze_backbone_epochs;
  /* The epoch's rate even when no step runs (schedules are pure functions of the position). */
  st->lr = schedule_lr(r->sched, epoch, 0, nb);
  double t0 = now_seconds(), sum = 0, comm0 = dist_comm_seconds(r->dist);
  long long imgs = 0;
  for (int b = 0; b < nb; b++) {
    const batch *bt = NULL;
    int got = loader_next(r->ltrain, &bt, e), ended = got == 0, total = got > 0 ? bt->count : 0;
    int mine = got < 0 ? -got : run_cancelled(r) ? run_cancel_error(r, epoch, e) : MSKX_OK;
    /* All processes learn of a failed read, a request to stop or an early end
     * before the step's collectives, so they stop at the same step. */
    rc = dist_step(r->dist, mine, ended, total, &ended, &total, e);
    if (rc || ended) {
      if (got > 0) loader_release(r->ltrain, bt);
      if (rc) return rc;
      break;
    }
    double lr = schedule_lr(r->sched, epoch, b, nb), loss;
    st->lr = lr;
    r->net->dropout_key = (uint64_t)r->rank << 48 ^ (uint64_t)epoch << 24 ^ (uint64_t)b;
    rc = train_step(r, bt, total, lr, frozen, &loss, e);
    loader_release(r->ltrain, bt);
    if (rc) return rc;
    sum += loss * total;
    imgs += total;
    double dt = now_seconds() - t0, ips = imgs / (dt > 0 ? dt : 1e-9);
    notify(r, TRAIN_PHASE_TRAIN, epoch, b + 1, nb, ips, sum / (double)imgs, lr, (nb - b - 1) * (dt / (b + 1)), NULL);
  }
  loader_stats ls;
  loader_get_stats(r->ltrain, &ls);
  st->skipped = ls.skipped;
  if (r->dist) {
    double sk = (double)ls.skipped;
    st->ranks = r->ranks;
    st->comm_seconds = dist_comm_seconds(r->dist) - comm0;
    if ((rc = dist_sum(r->dist, &sk, 1, e)) || (rc = share_weights(r, e))) return rc;
    st->skipped = (long long)sk;
  }
  st->train_loss = imgs ? sum / (double)imgs : NAN;
  st->train_seconds = now_seconds() - t0;
  st->images_per_s = imgs / (st->train_seconds > 0 ? st->train_seconds : 1e-9);
  if (ls.skipped && ls.n_skip_msgs)
    notify(r, TRAIN_PHASE_INFO, epoch, 0, 0, 0, 0, 0, 0, ls.skip_msgs[ls.n_skip_msgs - 1]);
  /* Every process has the same global counts, hence the same verdict. */
  return dist_agree(r->dist, check_skipped(r, epoch, imgs, st->skipped, &ls, e), e);
}

/* Keeping the training and validation plans resident costs the validation
 * plan's memory; it stays only while that much (plus this reserve) is still
 * available, else each switch rebuilds the plans as before. */
#define KEEP_PLANS_RESERVE_BYTES (256ull << 20)

static void check_plan_memory(run_ctx *r, int epoch) {
  if (!net_has_parked(r->net) || r->cfg.keep_plans != TRAIN_KEEP_PLANS_AUTO) return;
  uint64_t avail = mem_available_bytes();
  if (!avail || avail >= r->valid_plan_bytes + KEEP_PLANS_RESERVE_BYTES) return;
  net_drop_parked(r->net);
  net_set_keep_plans(r->net, 1, NULL);
  char text[256];
  snprintf(text, sizeof text,
           "memory: %.0f MB available, the validation plan needs about %.0f MB: plans are rebuilt every epoch",
           avail / 1048576.0, r->valid_plan_bytes / 1048576.0);
  notify(r, TRAIN_PHASE_INFO, epoch, 0, 0, 0, 0, 0, 0, text);
}

/* One epoch plus its bookkeeping; sets *stop when training should end. */
static int run_epoch(run_ctx *r, int epoch, int *stop, mskx_err *e) {
  epoch_stats st = {0};
  double t0 = now_seconds();
  net_plan_stats ps0 = r->net->plan_stats;
  long prims0 = r->eng->prims_created;
  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  int rc = run_train_epoch(r, epoch, &st, e);
  uint64_t rss0 = rss_bytes();
  int had_valid_plan = net_has_parked(r->net);
  if (!rc) rc = run_validation(r, epoch, &st, e);
  if (!rc && !had_valid_plan && !r->valid_plan_bytes) {
    uint64_t rss1 = rss_bytes();
    r->valid_plan_bytes = rss1 > rss0 ? rss1 - rss0 : 0;
  }
  if (!rc) check_plan_memory(r, epoch);
  st.plans_built = r->net->plan_stats.built - ps0.built;
  st.plans_reused = r->net->plan_stats.reused - ps0.reused;
  st.plan_seconds = r->net->plan_stats.seconds - ps0.seconds;
  st.prims_created = r->eng->prims_created - prims0;
  getrusage(RUSAGE_SELF, &ru1);
  st.page_faults = ru1.ru_minflt - ru0.ru_minflt;
  if (!rc && r->dist) {
    /* Every process computed these from the same sums; rank 0's bits make
     * the schedule and stopping decisions (hence the epoch count) certain to agree. */
    double v[2] = {st.val_loss, st.val_kappa};
    rc = dist_bcast_bytes(r->dist, v, sizeof v, e);
    st.val_loss = v[0];
    st.val_kappa = v[1];
  }
  if (rc) return rc;
  st.seconds = now_seconds() - t0;
  double monitored = strcmp(r->cfg.sched.monitor, "val_kappa") ? st.val_loss : st.val_kappa;
  schedule_epoch_end(r->sched, isfinite(monitored) ? monitored : (strcmp(r->cfg.sched.monitor, "val_kappa") ? INFINITY : -INFINITY));
  int by_kappa = !strcmp(r->cfg.select, "kappa");
  double value = by_kappa ? st.val_kappa : st.val_loss;
  if (!isfinite(value)) value = by_kappa ? -1.0 : INFINITY;
  int improved = r->st.best_epoch < 0 || (by_kappa ? value > r->st.best_value : value < r->st.best_value);
  char *metrics = epoch_metrics_json(&st);
  model_meta meta;
  rc = metrics ? fill_meta(r, &meta, epoch + 1, metrics, e) : err_set(e, MSKX_ENOMEM, "out of memory");
  if (improved) {
    r->st.best_value = value;
    r->st.best_epoch = epoch;
    r->st.best_kappa = st.val_kappa;
    r->st.bad_epochs = 0;
    if (!rc && r->rank == 0) rc = model_save(r->best_path, r->net, &meta, NULL, 0, NULL, 0, e);
  } else {
    r->st.bad_epochs++;
  }
  r->st.epochs_done = epoch + 1;
  r->st.skipped += st.skipped;
  int early = r->cfg.early_stop && r->st.bad_epochs >= r->cfg.early_stop;
  r->st.early_stopped = early;
  r->st.finished = early || r->st.epochs_done >= r->cfg.epochs;
  if (!rc && r->rank == 0) rc = checkpoint_save(r, &meta, e);
  if (!rc && r->rank == 0) rc = log_append(r, epoch, &st, improved, e);
  rc = dist_agree(r->dist, rc, e);
  if (!rc) {
    char text[512], comm[48] = "";
    if (st.ranks > 1)
      snprintf(comm, sizeof comm, "  %d processes, comm %.0f%%", st.ranks,
               100 * st.comm_seconds / (st.train_seconds > 0 ? st.train_seconds : 1));
    snprintf(text, sizeof text,
             "epoch %d/%d  train loss %.4f  val loss %.4f  val kappa %.4f  auc %.4f  acc %.4f  %.1f img/s%s  %.0fs%s%s",
             epoch + 1, r->cfg.epochs, st.train_loss, st.val_loss, st.val_kappa, st.val_auc, st.val_accuracy,
             st.images_per_s, comm, st.seconds, improved ? "  [best]" : "", early ? "  (early stop)" : "");
    notify(r, TRAIN_PHASE_EPOCH, epoch, 0, 0, st.images_per_s, st.train_loss, st.lr, 0, text);
  }
  free(metrics);
  *stop = r->st.finished;
  return rc;
}

/* Gradient buckets start their all-reduce during backward; with --sync-bn
 * batch norm adds its statistics over the processes. */
static int setup_dist_hooks(run_ctx *r, mskx_err *e) {
  param_store *ps = &r->net->ps;
  size_t bucket = r->cfg.bucket_kb > 0 ? (size_t)r->cfg.bucket_kb * 1024 / sizeof(float) : GRAD_SYNC_BUCKET_DEFAULT;
  int rc = grad_sync_create(r->dist, ps->grads, ps->n_params, bucket, &r->gsync, e);
  if (rc) return rc;
  r->net->cx.grad_ready = grad_sync_ready;
  r->net->cx.grad_ready_ctx = r->gsync;
  if (r->cfg.sync_bn) {
    r->net->cx.bn_sum = dist_bn_sum;
    r->net->cx.bn_sum_ctx = r->dist;
  }
  return MSKX_OK;
}

/* --precision auto: the precision of the fastest training step on this
 * machine (rank 0's choice in a data-parallel run), or the one a resumed run
 * trained in, so that resuming stays bit-exact; validation uses the same. */
static int resolve_precision(run_ctx *r, mskx_err *e) {
  train_config *c = &r->cfg;
  if (c->prec != PREC_AUTO) return MSKX_OK;
  int p = r->prec_resumed, rc = MSKX_OK;
  char text[256] = "";
  if (p < 0) {
    net_prec_choice ch;
    rc = net_choose_precision(r->net, r->local_batch, c->size, c->size, 1, 0, &ch, e);
    if (!rc) {
      p = (int)ch.chosen;
      int k = snprintf(text, sizeof text, "precision auto: one training step");
      for (int i = 0; i < ch.n && k < (int)sizeof text; i++)
        k += snprintf(text + k, sizeof text - (size_t)k, "%s %s %.0f ms", i ? "," : "", precision_name(ch.cand[i]),
                      ch.ms[i]);
      if (k < (int)sizeof text) snprintf(text + k, sizeof text - (size_t)k, ": training in %s", precision_name(ch.chosen));
    }
  } else {
    snprintf(text, sizeof text, "precision auto: training in %s, as before the resume", precision_name((precision)p));
  }
  if ((rc = dist_agree(r->dist, rc, e))) return rc;
  int32_t v = p;
  if (r->dist && (rc = dist_bcast_bytes(r->dist, &v, sizeof v, e))) return rc;
  c->prec = (precision)v;
  r->net->auto_prec[0] = r->net->auto_prec[1] = v;
  if (r->rank == 0) notify(r, TRAIN_PHASE_INFO, 0, 0, 0, 0, 0, 0, 0, text);
  return MSKX_OK;
}

static int setup_model(run_ctx *r, int resuming, mskx_err *e) {
  const train_config *c = &r->cfg;
  int rc = engine_dnnl_create(c->threads, &r->eng, e);
  if (!rc) rc = net_create(c->arch, r->eng, c->seed, &r->net, e);
  /* The training and validation plans stay resident (no re-planning twice
   * an epoch) unless --keep-plans off, or auto and memory is short (check_plan_memory). */
  if (!rc) rc = net_set_keep_plans(r->net, c->keep_plans == TRAIN_KEEP_PLANS_OFF ? 1 : 2, e);
  if (!rc && c->freeze_backbone_epochs > 0) {
    /* A frozen backbone trains the classifier's tail slice: refuse an arch without one before any work. */
    size_t head_offset;
    if ((rc = net_head_slice(r->net, &head_offset, e))) err_prefix(e, "--freeze-backbone-epochs");
  }
  if (!rc && arch_has_aux(&r->net->arch)) r->net->aux_weight = (float)c->aux_weight;
  if (!rc && !resuming && c->pretrained[0]) {
    /* safetensors, PyTorch .pth or Keras .h5, by content; the epsilon of
     * Keras weights stays with the network (and its checkpoints).
     * torchvision's ImageNet Inception-v3 expects transform_input (the
     * file's metadata, if any, says otherwise). */
    if (arch_has_aux(&r->net->arch)) r->net->transform_input = 1;
    import_info info;
    rc = import_load_net(r->net, c->pretrained, IMPORT_AUTO, 0, &info, e);
    if (rc) err_prefix(e, "--pretrained");
  }
  if (!rc) rc = optim_create(&c->optim, r->net->ps.n_params, &r->opt, e);
  if (!rc) rc = schedule_create(&c->sched, &r->sched, e);
  if (!rc && r->dist) rc = setup_dist_hooks(r, e);
  size_t n = (size_t)c->batch;
  r->logits = calloc(n, sizeof(float));
  r->dz = calloc(n, sizeof(float));
  r->sw = calloc(n, sizeof(float));
  if (!rc && (!r->logits || !r->dz || !r->sw)) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  if (!rc && resuming) rc = checkpoint_load(r, e);
  if (!rc) rc = resolve_precision(r, e);
  return rc;
}

void run_free(run_ctx *r) {
  loader_destroy(r->ltrain);
  loader_destroy(r->lvalid);
  cache_close(r->ctrain);
  cache_close(r->cvalid);
  net_destroy(r->net);
  engine_destroy(r->eng);
  optim_destroy(r->opt);
  schedule_destroy(r->sched);
  free(r->cw);
  free(r->logits);
  free(r->dz);
  free(r->sw);
  free(r->xpad);
  free(r->log_text);
  grad_sync_destroy(r->gsync);
}

void run_init(run_ctx *r, const train_config *c, const dataset *d, dist *dd, const train_hooks *h,
              const char *part_label) {
  memset(r, 0, sizeof *r);
  r->cfg = *c;
  r->dist = dd;
  r->rank = dist_rank(dd);
  r->ranks = dist_size(dd);
  r->local_batch = c->batch / r->ranks;
  r->data = d;
  r->fn = h ? h->progress : NULL;
  r->ctx = h ? h->ctx : NULL;
  r->cancel = h ? h->cancel : NULL;
  r->part_label = part_label;
  r->st.best_epoch = -1;
  r->prec_resumed = -1;
  r->cache_resumed = -1;
}

int run_build(run_ctx *r, int resuming, mskx_err *e) {
  int rc = parts_mask(r->data, r->cfg.parts, &r->mask, e);
  if (!rc) rc = setup_class_weights(r, e);
  if (!rc) rc = setup_model(r, resuming, e);
  if (!rc) rc = make_loaders(r, e);
  return rc;
}

/* Trains one model in dir (a run folder or a per-part subfolder). */
static int train_one(const train_config *c, const dataset *d, const char *dir, const char *part_label, int resuming,
                     dist *dd, const train_hooks *h, train_summary *sum, mskx_err *e) {
  run_ctx r;
  run_init(&r, c, d, dd, h, part_label);
  int rc = str_copy_exact(r.dir, sizeof r.dir, dir, "the run folder's path", e);
  if (!rc) rc = run_paths(&r, e);
  if (!rc) rc = run_build(&r, resuming, e);
  /* Building a --cache can take long: a request to stop may already be here. */
  if (!rc && run_cancelled(&r)) rc = run_cancel_error(&r, r.st.epochs_done, e);
  rc = dist_agree(dd, rc, e);
  /* Each process reads the checkpoint itself: all must resume from the same epoch. */
  if (!rc) rc = dist_check_same(dd, (uint64_t)r.st.epochs_done, "the checkpoint's epoch (is the run folder shared?)", e);
  if (!rc && dd) rc = share_weights(&r, e);
  double t0 = now_seconds();
  /* A finished run can be extended with more epochs, unless it stopped early. */
  for (int epoch = r.st.epochs_done, stop = r.st.early_stopped; !rc && !stop && epoch < c->epochs; epoch++)
    rc = run_epoch(&r, epoch, &stop, e);
  if (!rc && sum) {
    sum->epochs_run = r.st.epochs_done;
    sum->best_epoch = r.st.best_epoch;
    sum->best_value = r.st.best_value;
    sum->best_kappa = r.st.best_kappa;
    sum->seconds = now_seconds() - t0;
    sum->skipped_images = r.st.skipped;
  }
  run_free(&r);
  return rc;
}

static int open_dataset(const train_config *c, dataset **d, mskx_err *e) {
  dataset_options o = {.require_train = 1, .require_valid = 1};
  return dataset_open(c->data, &o, d, e);
}

/* Per-part runs: one model per selected part with training images, then the bundle. */
static int train_per_part(const train_config *c, const dataset *d, int resuming, dist *dd, const train_hooks *h,
                          train_summary *sum, mskx_err *e) {
  int root = dist_rank(dd) == 0;
  uint64_t mask;
  int rc = parts_mask(d, c->parts, &mask, e);
  if (rc) return rc;
  cJSON *bundle = cJSON_CreateObject(), *models = cJSON_CreateObject();
  cJSON_AddStringToObject(bundle, "format", "mskx-bundle-1");
  cJSON_AddItemToObject(bundle, "models", models);
  double kappa_sum = 0;
  int n = 0;
  for (int p = 0; p < d->n_parts && !rc; p++) {
    if (!trains_part(d, mask, p)) continue;
    train_config pc = *c;
    pc.per_part = 0;
    snprintf(pc.parts, sizeof pc.parts, "%s", d->parts[p]);
    /* An arch map's entry for this part (the same string when not a map). */
    if ((rc = train_arch_for(c->arch, d->parts[p], pc.arch, sizeof pc.arch, e))) break;
    char dir[2048], rel[256];
    snprintf(dir, sizeof dir, "%s/%s", c->out, d->parts[p]);
    snprintf(rel, sizeof rel, "%s/best.safetensors", d->parts[p]);
    int part_resume = resuming && path_exists(dir);
    rc = dist_agree(dd, root ? mkdir_p(dir, e) : MSKX_OK, e);
    train_summary ps = {0};
    if (!rc) rc = train_one(&pc, d, dir, d->parts[p], part_resume, dd, h, &ps, e);
    if (rc) err_prefix(e, "%s", d->parts[p]);
    cJSON_AddStringToObject(models, d->parts[p], rel);
    kappa_sum += ps.best_kappa;
    n++;
    if (sum) {
      sum->epochs_run += ps.epochs_run;
      sum->seconds += ps.seconds;
      sum->skipped_images += ps.skipped_images;
    }
  }
  if (!rc && n == 0) rc = err_set(e, MSKX_EINVAL, "no selected part has training images");
  if (!rc) {
    char path[2048];
    snprintf(path, sizeof path, "%s/bundle.json", c->out);
    if (root) rc = json_write_atomic(path, bundle, e);
    rc = dist_agree(dd, rc, e);
  }
  if (sum && n) sum->best_kappa = kappa_sum / n;
  cJSON_Delete(bundle);
  return rc;
}

/* Everything that can be checked before a run folder is created or touched:
 * the dataset, the part selection and the class weights of every model. */
static int preflight(const train_config *c, dataset **d, mskx_err *e) {
  int rc = open_dataset(c, d, e);
  if (rc) return rc;
  run_ctx r;
  memset(&r, 0, sizeof r);
  r.cfg = *c;
  r.data = *d;
  rc = parts_mask(*d, c->parts, &r.mask, e);
  if (!rc && !c->per_part) rc = setup_class_weights(&r, e);
  uint64_t all = r.mask;
  for (int p = 0; !rc && c->per_part && p < (*d)->n_parts; p++) {
    if (!trains_part(*d, all, p)) continue;
    free(r.cw);
    r.cw = NULL;
    r.mask = 1ULL << p;
    if ((rc = setup_class_weights(&r, e))) err_prefix(e, "%s", (*d)->parts[p]);
    /* Each part's architecture must fit a model file's metadata. */
    char arch[MODEL_ARCH_MAX];
    if (!rc) rc = train_arch_for(c->arch, (*d)->parts[p], arch, sizeof arch, e);
  }
  if (!rc && !c->per_part && strlen(c->arch) >= MODEL_ARCH_MAX)
    rc = err_set(e, MSKX_EINVAL, "--arch is %zu characters long; a model file holds at most %d", strlen(c->arch),
                 MODEL_ARCH_MAX - 1);
  free(r.cw);
  if (!rc && c->pretrained[0] && !path_exists(c->pretrained))
    rc = err_set(e, MSKX_EIO, "--pretrained %s: no such file", c->pretrained);
  if (rc) {
    dataset_free(*d);
    *d = NULL;
  }
  return rc;
}

static int run_with(const train_config *c, dataset *d, int resuming, dist *dd, const train_hooks *h,
                    train_summary *out, mskx_err *e) {
  train_summary sum = {0};
  sum.best_epoch = -1;
  int rc = c->per_part ? train_per_part(c, d, resuming, dd, h, &sum, e)
                       : train_one(c, d, c->out, NULL, resuming, dd, h, &sum, e);
  if (out) *out = sum;
  return rc;
}

/* The checks every process makes before any file is touched, agreed. */
static int check_config(const train_config *c, dist *dd, mskx_err *e) {
  int rc = train_config_validate(c, e), n = dist_size(dd);
  if (!rc && c->batch % n)
    rc = err_set(e, MSKX_EINVAL, "--batch %d (the global batch) does not split evenly over %d processes", c->batch, n);
  if ((rc = dist_agree(dd, rc, e))) return rc;
  return dist_check_same(dd, train_config_fingerprint(c), "the training options (compare their command lines)", e);
}

/* Opening the dataset on every process, then rank 0 alone writes. */
static int prepare(const train_config *c, dist *dd, int force, int write_config, dataset **d, mskx_err *e) {
  int rc = dist_agree(dd, preflight(c, d, e), e);
  if (rc || !write_config) return rc;
  if (dist_rank(dd) == 0) rc = force >= 0 ? run_dir_prepare(c, force, NULL, e) : run_dir_write_config(c, e);
  return dist_agree(dd, rc, e);
}

/* --lr auto (one process): the finder's sweep runs before the run folder is
 * touched, so a failed sweep leaves it as it was; then the run trains with
 * the chosen rate exactly as `--lr <that rate>` would (the sweep has its own
 * network, optimizer and loaders). The sweep goes into config.json and the
 * folder's lr_find.csv and lr_find.png. */
static int train_lr_auto(const train_config *c, int force, const train_hooks *h, train_summary *out, mskx_err *e) {
  train_progress_fn fn = h ? h->progress : NULL;
  void *ctx = h ? h->ctx : NULL;
  dataset *d = NULL;
  lr_find_options o;
  lr_find_options_default(&o);
  lr_find_result res = {0};
  int rc = run_dir_check(c, force, e);
  if (!rc) rc = preflight(c, &d, e);
  if (!rc) rc = lr_find_run(c, d, &o, fn, ctx, &res, e);
  train_config k = *c;
  char *sweep = NULL;
  if (!rc) {
    k.optim.lr = k.sched.lr0 = res.lr_chosen;
    k.lr_found_steepest = res.lr_steepest;
    k.lr_found_min_tenth = res.lr_min_tenth;
    sweep = lr_find_json(&res, &o, 1);
    if (!sweep) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  }
  if (!rc) rc = train_config_validate(&k, e);
  if (!rc) rc = run_dir_prepare(&k, force, sweep, e);
  if (!rc) rc = lr_find_write(&res, k.out, e);
  if (!rc && fn) {
    char text[256];
    snprintf(text, sizeof text, "learning-rate finder: %d steps%s; steepest %.3g, minimum/10 %.3g: training with %.17g",
             res.n, res.diverged ? " (stopped at divergence)" : "", res.lr_steepest, res.lr_min_tenth, k.optim.lr);
    train_progress p = {TRAIN_PHASE_INFO, NULL, 0, k.epochs, 0, 0, 0, 0, k.optim.lr, 0, text};
    fn(ctx, &p);
  }
  if (!rc) rc = run_with(&k, d, 0, NULL, h, out, e);
  free(sweep);
  lr_find_result_free(&res);
  dataset_free(d);
  return rc;
}

int train_run(const train_config *c, int force, dist *dd, const train_hooks *h, train_summary *out, mskx_err *e) {
  dataset *d = NULL;
  if (dist_size(dd) == 1) dd = NULL;  /* one process: exactly the plain path */
  int rc = check_config(c, dd, e);
  if (!rc && c->lr_auto && dd)
    rc = dist_agree(dd, err_set(e, MSKX_EUNSUPPORTED, "--lr auto: run the sweep in one process (mskx lr-find), "
                                "then pass its rate"), e);
  if (!rc && c->lr_auto) return train_lr_auto(c, force, h, out, e);
  if (!rc) rc = prepare(c, dd, force, 1, &d, e);
  if (!rc) rc = run_with(c, d, 0, dd, h, out, e);
  dataset_free(d);
  return rc;
}

/* Resuming owns the run folder: temporaries there are an interrupted
 * process's (its atomic writes never completed), never another run's. */
static int remove_stale_temps(const char *dir, dist *dd, const train_hooks *h, mskx_err *e) {
  if (dist_rank(dd) != 0) return MSKX_OK;
  int removed = 0;
  char names[512], text[700];
  int rc = run_dir_remove_temps(dir, &removed, names, sizeof names, e);
  if (!rc && removed && h && h->progress) {
    snprintf(text, sizeof text, "removed %d temporary file%s left by an interrupted run: %s", removed,
             removed == 1 ? "" : "s", names);
    train_progress p = {.phase = TRAIN_PHASE_INFO, .text = text};
    h->progress(h->ctx, &p);
  }
  return rc;
}

int train_resume(const char *dir, const train_resume_overrides *o, dist *dd, const train_hooks *h, train_summary *out,
                 mskx_err *e) {
  train_resume_overrides none = {0};
  if (!o) o = &none;
  train_config c;
  dataset *d = NULL;
  if (dist_size(dd) == 1) dd = NULL;
  int rc = dist_agree(dd, run_dir_read_config(dir, &c, e), e);
  if (!rc) rc = dist_agree(dd, remove_stale_temps(dir, dd, h, e), e);
  if (rc) return rc;
  if (o->epochs > 0) {
    c.epochs = o->epochs;
    c.sched.epochs = o->epochs;
  }
  if (o->threads > 0) c.threads = o->threads;
  if (o->set_keep_plans) c.keep_plans = o->keep_plans;
  rc = check_config(&c, dd, e);
  if (!rc) rc = prepare(&c, dd, -1, o->epochs > 0 || o->threads > 0 || o->set_keep_plans, &d, e);
  if (!rc) rc = run_with(&c, d, 1, dd, h, out, e);
  dataset_free(d);
  return rc;
}
