/* The HTML evaluation report (see report.h): gallery selection, training
 * logs, calibration bins, and the page itself, written with stdio into a
 * memory stream. Styles are inline; figures are PNG data: URIs. */
#include "eval/report.h"
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>
#include "core/error.h"
#include "core/util.h"
#include "data/parts.h"
#include "eval/bundle_select.h"
#include "eval/paper.h"
#include "infer/cam.h"

/* log.jsonl of a long run is a few hundred kB; refuse anything absurd. */
#define LOG_MAX_BYTES (64u << 20)

/* ---- gallery ---- */

typedef struct cand {
  int study;
  double p;
} cand;

static int cmp_cand_desc(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->p != y->p) return x->p > y->p ? -1 : 1;
  return (x->study > y->study) - (x->study < y->study);
}

static int render_item(predictor *p, const eval_run *r, const predict_options *po, int study, gallery_item *it,
                       mskx_err *e) {
  eval_cam cam;
  int rc = eval_study_cam(p, r, study, po, &cam, e);
  if (rc) return rc;
  int k = 0;
  for (int i = 1; i < cam.n; i++)
    if (cam.image_prob[i] > cam.image_prob[k]) k = i;
  const gray_image *g = &cam.imgs[k];
  uint8_t *px = malloc((size_t)g->w * g->h * 3);
  if (!px) rc = err_set(e, MSKX_ENOMEM, "out of memory for a %dx%d overlay", g->w, g->h);
  if (!rc) {
    cam_overlay_rgb(g, cam.maps[k], CAM_DEFAULT_ALPHA, px);
    rc = plot_thumbnail(px, g->w, g->h, REPORT_THUMB_SIDE, &it->thumb, e);
  }
  it->study = study;
  it->image = k;
  it->image_prob = cam.image_prob[k];
  free(px);
  eval_cam_free(&cam);
  return rc;
}

int report_gallery_build(predictor *p, const eval_run *r, const predict_options *po, int per_kind,
                         report_gallery *g, mskx_err *e) {
  memset(g, 0, sizeof *g);
  per_kind = per_kind < 0 ? 0 : per_kind > REPORT_GALLERY_MAX ? REPORT_GALLERY_MAX : per_kind;
  cand *c = malloc((size_t)r->n_studies * sizeof *c);
  if (!c) return err_set(e, MSKX_ENOMEM, "out of memory");
  int rc = MSKX_OK;
  for (int kind = 0; !rc && kind < GALLERY_KINDS; kind++) {
    int n = 0;
    for (int i = 0; i < r->n_studies; i++) {
      const eval_study *st = &r->studies[i];
      int want_label = kind != GALLERY_FP, want_dec = kind != GALLERY_FN;
      if (st->ok && st->ds->label == want_label && st->abnormal == want_dec)
        c[n++] = (cand){i, kind == GALLERY_FN ? -st->probability : st->probability};
    }
    qsort(c, (size_t)n, sizeof *c, cmp_cand_desc);
    for (int k = 0; !rc && k < n && k < per_kind; k++)
      if (!(rc = render_item(p, r, po, c[k].study, &g->items[kind][k], e))) g->n[kind]++;
  }
  free(c);
  if (rc) report_gallery_free(g);
  return rc;
}

void report_gallery_free(report_gallery *g) {
  for (int k = 0; k < GALLERY_KINDS; k++)
    for (int i = 0; i < REPORT_GALLERY_MAX; i++) png_buf_free(&g->items[k][i].thumb);
  memset(g, 0, sizeof *g);
}

/* ---- training logs ---- */

void train_log_free(train_log *l) {
  free(l->epoch);
  free(l->train_loss);
  free(l->val_loss);
  free(l->val_kappa);
  free(l->val_auc);
  memset(l, 0, sizeof *l);
  l->best = -1;
}

static double num_or_nan(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : NAN;
}

static int parse_line(const char *s, size_t len, const char *name, int line, train_log *out, mskx_err *e) {
  cJSON *o = cJSON_ParseWithLength(s, len);
  int rc = MSKX_OK;
  double ep = num_or_nan(o, "epoch");
  if (!cJSON_IsObject(o)) rc = err_set(e, MSKX_EFORMAT, "%s:%d: not a JSON object", name, line);
  else if (!(ep >= 0 && ep < 1e9)) rc = err_set(e, MSKX_EFORMAT, "%s:%d: 'epoch' is missing or not a number", name, line);
  if (!rc) {
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(o, "val");
    int i = out->n++;
    out->epoch[i] = ep;
    out->train_loss[i] = num_or_nan(o, "train_loss");
    out->val_loss[i] = num_or_nan(val, "loss");
    out->val_kappa[i] = num_or_nan(val, "kappa");
    out->val_auc[i] = num_or_nan(val, "auc");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "best"))) out->best = i;
  }
  cJSON_Delete(o);
  return rc;
}

int train_log_parse(const char *text, size_t len, const char *name, train_log *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  out->best = -1;
  size_t lines = 1;
  for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
  out->epoch = malloc(lines * sizeof(double));
  out->train_loss = malloc(lines * sizeof(double));
  out->val_loss = malloc(lines * sizeof(double));
  out->val_kappa = malloc(lines * sizeof(double));
  out->val_auc = malloc(lines * sizeof(double));
  int rc = !out->epoch || !out->train_loss || !out->val_loss || !out->val_kappa || !out->val_auc
               ? err_set(e, MSKX_ENOMEM, "out of memory")
               : MSKX_OK;
  int line = 0;
  for (size_t at = 0; !rc && at < len; line++) {
    size_t end = at;
    while (end < len && text[end] != '\n') end++;
    size_t a = at, b = end;
    while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
    while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r')) b--;
    if (b > a) rc = parse_line(text + a, b - a, name, line + 1, out, e);
    at = end + 1;
  }
  if (!rc && out->n == 0) rc = err_set(e, MSKX_EFORMAT, "%s: no epochs logged", name);
  if (rc) train_log_free(out);
  return rc;
}

static int read_log(const char *file, const char *label, train_log *out, mskx_err *e) {
  unsigned char *text = NULL;
  size_t len = 0;
  int rc = file_read_all(file, LOG_MAX_BYTES, &text, &len, e);
  if (!rc && memchr(text, 0, len)) rc = err_set(e, MSKX_EFORMAT, "%s: contains NUL bytes", file);
  if (!rc) rc = train_log_parse((const char *)text, len, file, out, e);
  if (!rc) snprintf(out->label, sizeof out->label, "%s", label);
  free(text);
  return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int train_logs_read(const char *dir, train_logs *out, int *found, mskx_err *e) {
  memset(out, 0, sizeof *out);
  *found = 0;
  snprintf(out->dir, sizeof out->dir, "%s", dir);
  char file[4096];
  int rc = path_join(file, sizeof file, dir, "log.jsonl", e);
  if (rc) return rc;
  if (path_exists(file)) {
    *found = 1;
    if (!(rc = read_log(file, "", &out->log[0], e))) out->n = 1;
    return rc;
  }
  DIR *d = opendir(dir);
  if (!d) return MSKX_OK;
  char *names[REPORT_MAX_LOGS];
  int nn = 0;
  struct dirent *de;
  while ((de = readdir(d)) && nn < REPORT_MAX_LOGS) {
    char sub[4096];
    if (de->d_name[0] == '.' || path_join(sub, sizeof sub, dir, de->d_name, e) ||
        path_join(file, sizeof file, sub, "log.jsonl", e) || !path_exists(file))
      continue;
    if ((names[nn] = str_dup(de->d_name))) nn++;
  }
  closedir(d);
  qsort(names, (size_t)nn, sizeof *names, cmp_str);
  *found = nn > 0;
  for (int i = 0; i < nn; i++) {
    char sub[4096];
    if (!rc) rc = path_join(sub, sizeof sub, dir, names[i], e);
    if (!rc) rc = path_join(file, sizeof file, sub, "log.jsonl", e);
    if (!rc && !(rc = read_log(file, names[i], &out->log[out->n], e))) out->n++;
    free(names[i]);
  }
  if (rc) train_logs_free(out);
  return rc;
}

void train_logs_free(train_logs *l) {
  for (int i = 0; i < l->n; i++) train_log_free(&l->log[i]);
  l->n = 0;
}

/* ---- calibration ---- */

void report_calibration(const double *p, const int *y, int n, calib *out) {
  memset(out, 0, sizeof *out);
  double sp[REPORT_CAL_BINS] = {0}, sy[REPORT_CAL_BINS] = {0};
  for (int i = 0; i < n; i++) {
    int b = (int)floor(p[i] * REPORT_CAL_BINS);
    b = b < 0 ? 0 : b >= REPORT_CAL_BINS ? REPORT_CAL_BINS - 1 : b;
    out->count[b]++;
    sp[b] += p[i];
    sy[b] += y[i] != 0;
    out->brier += (p[i] - (y[i] != 0)) * (p[i] - (y[i] != 0));
  }
  for (int b = 0; b < REPORT_CAL_BINS; b++) {
    out->mean_pred[b] = out->count[b] ? sp[b] / out->count[b] : NAN;
    out->frac_pos[b] = out->count[b] ? sy[b] / out->count[b] : NAN;
    if (out->count[b]) out->ece += (double)out->count[b] / n * fabs(out->frac_pos[b] - out->mean_pred[b]);
  }
  out->brier = n ? out->brier / n : NAN;
  if (!n) out->ece = NAN;
}

bool report_data_is_synthetic(const char *root) {
  char p[4096];
  snprintf(p, sizeof p, "%s/synth_findings.csv", root);
  if (path_exists(p)) return 1;
  snprintf(p, sizeof p, "%s", root);
  size_t l = strlen(p);
  while (l > 1 && p[l - 1] == '/') p[--l] = 0;
  char *slash = strrchr(p, '/');
  const char *base = slash ? slash + 1 : p;
  if (strcmp(base, "MURA-v1.1")) return 0;
  if (slash) snprintf(slash, sizeof p - (size_t)(slash - p), "/synth_findings.csv");
  else snprintf(p, sizeof p, "synth_findings.csv");
  return path_exists(p);
}


/* ---- the page ---- */

static const char *const css =
    ":root{--ink:#1d2433;--muted:#5b6475;--line:#e3e6eb;--bg:#f5f6f8;--accent:#0072b2;--warn:#b42318}"
    "*{box-sizing:border-box}"
    "body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.5 system-ui,-apple-system,'Segoe UI',"
    "Roboto,'Helvetica Neue',Arial,sans-serif;-webkit-font-smoothing:antialiased}"
    "main{max-width:1120px;margin:0 auto;padding:28px 28px 56px}"
    "header .eyebrow{text-transform:uppercase;letter-spacing:.08em;font-size:12px;color:var(--muted);font-weight:600}"
    "h1{font-size:27px;line-height:1.25;margin:4px 0 4px;font-weight:650}"
    "header .sub{color:var(--muted);margin:0}"
    "h2{font-size:18px;margin:0 0 4px;font-weight:650}"
    "h2+p.lead{margin-top:0}"
    "p.lead{color:var(--muted);margin:0 0 14px;font-size:14px}"
    ".banner{margin:18px 0 0;padding:11px 16px;border-radius:8px;border:1px solid #f2d49b;background:#fff8e8;font-size:14px}"
    ".banner.synthetic{border-color:#f1b5ae;background:#fdf0ee}"
    ".banner strong{color:#8a4b00}.banner.synthetic strong{color:var(--warn)}"
    "section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:20px 24px;margin-top:18px}"
    ".cards{display:grid;grid-template-columns:repeat(5,1fr);gap:12px;margin-top:18px}"
    ".card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:12px 16px}"
    ".card .k{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em;font-weight:600}"
    ".card .v{font-size:26px;font-weight:650;font-variant-numeric:tabular-nums;line-height:1.2;margin-top:2px}"
    ".card .ci{font-size:12.5px;color:var(--muted);font-variant-numeric:tabular-nums}"
    "dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:0;font-size:14px}"
    "dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;overflow-wrap:anywhere}"
    ".cols{display:grid;grid-template-columns:1fr 1fr;gap:24px}"
    "table.t{border-collapse:collapse;width:100%;font-size:13.5px;font-variant-numeric:tabular-nums}"
    "table.t th,table.t td{padding:6px 7px;text-align:right;border-bottom:1px solid var(--line);white-space:nowrap}"
    "table.t th{font-size:12px;color:var(--muted);font-weight:600;text-transform:uppercase;letter-spacing:.03em}"
    "table.t th:first-child,table.t td:first-child{text-align:left}"
    "table.t tr.total td{font-weight:650;border-top:2px solid var(--line)}"
    "table.t td.ref,table.t th.ref{color:var(--muted);background:#fafbfc}"
    "table.t .ci{color:var(--muted);font-size:12.5px}"
    "figure{margin:0}figure img{max-width:100%;height:auto;display:block}"
    "figcaption{color:var(--muted);font-size:13px;margin-top:6px}"
    ".cms{display:grid;grid-template-columns:repeat(4,1fr);gap:14px}"
    ".cm{border:1px solid var(--line);border-radius:8px;padding:10px 12px}"
    ".cm .h{font-weight:600;font-size:14px}.cm .h span{color:var(--muted);font-weight:400;font-size:12.5px}"
    ".cm table{border-collapse:collapse;width:100%;margin-top:6px;font-variant-numeric:tabular-nums;font-size:13px}"
    ".cm th{font-weight:500;color:var(--muted);font-size:11.5px;padding:2px 4px;text-align:center}"
    ".cm th.r{text-align:right}"
    ".cm td{text-align:center;padding:7px 4px;border:2px solid #fff;border-radius:4px;font-weight:600}"
    ".gal h3{font-size:15px;margin:16px 0 8px;font-weight:600}.gal h3 span{color:var(--muted);font-weight:400;font-size:13px}"
    ".gal .row{display:grid;grid-template-columns:repeat(4,1fr);gap:14px}"
    ".gal figure{border:1px solid var(--line);border-radius:8px;padding:8px;background:#fcfcfd}"
    ".gal img{width:100%;height:230px;object-fit:contain;border-radius:4px;background:#0b0d12}"
    ".gal .p{font-weight:600;font-variant-numeric:tabular-nums;color:var(--ink)}"
    ".gal .path{font:11.5px/1.35 ui-monospace,'DejaVu Sans Mono',Menlo,monospace;overflow-wrap:anywhere}"
    ".empty{color:var(--muted);font-size:14px;font-style:italic}"
    ".notes{font-size:13px;color:var(--muted)}.notes p{margin:6px 0}"
    "footer{margin-top:22px;font-size:12.5px;color:var(--muted);text-align:center}"
    "@media (max-width:900px){.cards{grid-template-columns:repeat(2,1fr)}.cols{grid-template-columns:1fr}"
    ".cms,.gal .row{grid-template-columns:repeat(2,1fr)}}";

static void esc(FILE *f, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
      case '&': fputs("&amp;", f); break;
      case '<': fputs("&lt;", f); break;
      case '>': fputs("&gt;", f); break;
      case '"': fputs("&quot;", f); break;
      case '\'': fputs("&#39;", f); break;
      default: fputc(*s, f);
    }
  }
}

static int img(FILE *f, const png_buf *b, const char *alt) {
  char *s = base64_encode(b->data, b->len);
  if (!s) return MSKX_ENOMEM;
  fprintf(f, "<img width=\"%d\" height=\"%d\" alt=\"", b->css_w, b->css_h);
  esc(f, alt);
  fprintf(f, "\" src=\"data:image/png;base64,%s\">", s);
  free(s);
  return MSKX_OK;
}

/* Three decimals with a true minus sign; a dash for NaN. The figures are
 * metrics in [-1, 1]; a value too large for three decimals in F3_LEN bytes
 * gets three significant digits instead ("1.23e+40"), which always fits. */
#define F3_LEN 32
static const char *f3(char buf[F3_LEN], double v) {
  const char *minus = v < 0 && fabs(v) >= 5e-4 ? "&minus;" : "";
  if (!isfinite(v)) snprintf(buf, F3_LEN, "&ndash;");
  else if (snprintf(buf, F3_LEN, "%s%.3f", minus, fabs(v)) >= F3_LEN) snprintf(buf, F3_LEN, "%s%.3g", minus, fabs(v));
  return buf;
}

/* "XR_ELBOW" -> "Elbow"; other names as they are. */
static const char *pretty(const char *part, char *buf, size_t n) {
  if (!strcmp(part, "overall")) return "All studies";
  if (!part_has_prefix(part)) return part;
  snprintf(buf, n, "%s", part + PART_PREFIX_LEN);
  for (size_t i = 1; buf[i]; i++) buf[i] = (char)(buf[i] >= 'A' && buf[i] <= 'Z' ? buf[i] + 32 : buf[i]);
  return buf;
}

static void head(FILE *f, const report_input *in) {
  const char *base = strrchr(in->model_path, '/');
  fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>mskx evaluation: ", f);
  esc(f, base ? base + 1 : in->model_path);
  fprintf(f, "</title><style>%s</style></head><body><main>\n", css);
  char when[64];
  time_t t = time(NULL);
  strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&t));
  fprintf(f, "<header><div class=\"eyebrow\">mskx %s &middot; evaluation report</div><h1>", MSKX_VERSION);
  esc(f, base ? base + 1 : in->model_path);
  fprintf(f, " on the %s split</h1><p class=\"sub\">%d studies (%ld images) of ", in->run->split->name,
          in->run->n_ok, in->run->n_images);
  esc(f, in->run->d->root);
  fprintf(f, " &middot; %s</p></header>\n", when);
  if (in->synthetic)
    fputs("<div class=\"banner synthetic\"><strong>Synthetic data.</strong> These studies are procedural phantoms "
          "written by <code>mskx synth</code>: they depict no patient and the figures below say nothing about "
          "performance on real radiographs.</div>\n", f);
  else
    fputs("<div class=\"banner\"><strong>Research use only.</strong> mskx is not a medical device; these results "
          "describe one model on one dataset and must not guide the care of patients.</div>\n", f);
}

static void card(FILE *f, const char *k, const eval_group *g, int m) {
  char a[F3_LEN], b[F3_LEN], c[F3_LEN];
  fprintf(f, "<div class=\"card\"><div class=\"k\">%s</div><div class=\"v\">%s</div>", k, f3(a, g->value[m]));
  if (isfinite(g->ci_lo[m])) fprintf(f, "<div class=\"ci\">95%% CI %s to %s</div>", f3(b, g->ci_lo[m]), f3(c, g->ci_hi[m]));
  else fputs("<div class=\"ci\">no interval</div>", f);
  fputs("</div>", f);
}

static void details(FILE *f, const report_input *in) {
  const predictor_info *pi = in->info;
  static const char *const kinds[] = {"model file", "per-part bundle", "ensemble"};
  const eval_run *r = in->run;
  fputs("<div class=\"cards\">", f);
  card(f, "Cohen's kappa", &in->res->overall, METRIC_KAPPA);
  card(f, "AUROC", &in->res->overall, METRIC_AUC);
  card(f, "Sensitivity", &in->res->overall, METRIC_SENSITIVITY);
  card(f, "Specificity", &in->res->overall, METRIC_SPECIFICITY);
  card(f, "Accuracy", &in->res->overall, METRIC_ACCURACY);
  fputs("</div>\n<section><h2>Model and evaluation</h2><p class=\"lead\">What was evaluated, and how.</p>"
        "<div class=\"cols\"><dl class=\"kv\"><dt>Model</dt><dd>", f);
  esc(f, in->model_path);
  fprintf(f, "</dd><dt>Kind</dt><dd>%s", kinds[pi->kind]);
  if (pi->kind == PNODE_ENSEMBLE) fprintf(f, " (%s of %d members)", pi->method, pi->n_members);
  if (pi->kind == PNODE_BUNDLE) fprintf(f, " (%d models)", pi->n_members);
  fputs("</dd><dt>Architecture</dt><dd>", f);
  esc(f, pi->arch);
  if (pi->size) fprintf(f, "</dd><dt>Input size</dt><dd>%d &times; %d px", pi->size, pi->size);
  else fputs("</dd><dt>Input size</dt><dd>differs between members", f);
  fputs("</dd><dt>Parts served</dt><dd>", f);
  esc(f, pi->parts);
  if (pi->threshold >= 0) fprintf(f, "</dd><dt>Threshold</dt><dd>abnormal when p &gt; %.4g", pi->threshold);
  else fputs("</dd><dt>Threshold</dt><dd>each member model's own", f);
  fputs("</dd></dl><dl class=\"kv\"><dt>Data</dt><dd>", f);
  esc(f, r->d->root);
  fprintf(f, "</dd><dt>Split</dt><dd>%s: %d of %d studies predicted, %ld images", r->split->name, r->n_ok,
          r->n_studies, r->n_images);
  if (r->n_skipped) fprintf(f, " (%ld unreadable images skipped)", r->n_skipped);
  fprintf(f, "</dd><dt>Study probability</dt><dd>%s of the image probabilities%s</dd>",
          r->agg == AGG_MAX ? "maximum" : "mean (the MURA paper's rule)", r->tta ? ", each image averaged with its mirror" : "");
  fprintf(f, "<dt>Precision</dt><dd>%s</dd><dt>Intervals</dt><dd>", in->precision ? in->precision : "fp32");
  if (in->res->opt.n_boot)
    fprintf(f, "95%% percentile bootstrap, %d resamples stratified by part, seed %llu", in->res->opt.n_boot,
            (unsigned long long)in->res->opt.seed);
  else
    fputs("none (bootstrap off)", f);
  fprintf(f, "</dd><dt>Time</dt><dd>%.1f s (%.1f images/s)</dd></dl></div></section>\n", r->seconds,
          r->seconds > 0 ? r->n_images / r->seconds : 0.0);
}

static void kappa_row(FILE *f, const eval_group *g, int total) {
  char nm[64], a[F3_LEN], b[F3_LEN], c[F3_LEN];
  fprintf(f, "<tr%s><td>%s</td><td>%d</td><td>%d</td>", total ? " class=\"total\"" : "", pretty(g->part, nm, sizeof nm),
          g->n_studies, g->n_abnormal);
  for (int m = 0; m < 2; m++) {
    int k = m ? METRIC_AUC : METRIC_KAPPA;
    fprintf(f, "<td>%s", f3(a, g->value[k]));
    if (isfinite(g->ci_lo[k])) fprintf(f, " <span class=\"ci\">[%s, %s]</span>", f3(b, g->ci_lo[k]), f3(c, g->ci_hi[k]));
    fputs("</td>", f);
  }
  fprintf(f, "<td>%s</td><td>%s</td>", f3(a, g->value[METRIC_SENSITIVITY]), f3(b, g->value[METRIC_SPECIFICITY]));
  const paper_part *p = paper_find(g->part);
  fprintf(f, "<td class=\"ref\">%s</td>", f3(a, p ? p->model.kappa : NAN));
  for (int r = 0; r < PAPER_N_RADIOLOGISTS; r++) fprintf(f, "<td class=\"ref\">%s</td>", f3(a, p ? p->radiologist[r].kappa : NAN));
  fputs("</tr>\n", f);
}

static void kappa_plot_row(plot_kappa_row *row, const eval_group *g, char *buf, size_t n) {
  const paper_part *p = paper_find(g->part);
  *row = (plot_kappa_row){pretty(g->part, buf, n), g->value[METRIC_KAPPA], g->ci_lo[METRIC_KAPPA],
                          g->ci_hi[METRIC_KAPPA], {NAN, NAN, NAN, NAN}};
  row->ref[0] = p ? p->model.kappa : NAN;
  for (int r = 0; r < PAPER_N_RADIOLOGISTS; r++) row->ref[1 + r] = p ? p->radiologist[r].kappa : NAN;
}

/* A bundle made by `mskx bundle --select`: every candidate's figure per part,
 * the chosen one in bold, and why. */
static int selection_section(FILE *f, const report_input *in, mskx_err *e) {
  bundle_selection *s = NULL;
  int rc = bundle_selection_read(in->model_path, &s, e);
  if (rc || !s) return rc;
  const char *m = sel_metric_name(s->metric);
  fprintf(f, "<section><h2>Per-part selection</h2><p class=\"lead\">This bundle holds, for each part, the candidate "
          "with the %s validation %s (<code>mskx bundle --select %s</code>). Figures marked * were computed on ",
          s->metric == SEL_LOSS ? "lowest" : "highest", s->metric == SEL_AUC ? "AUROC" : m, m);
  esc(f, s->data ? s->data : "(none)");
  fputs("'s validation split; the others are the validation figures stored by training.</p>\n"
        "<table class=\"t\"><thead><tr><th>Part</th>", f);
  for (int c = 0; c < s->n_cand; c++) {
    fputs("<th title=\"", f);
    esc(f, s->cand_path[c]);
    fprintf(f, "\">[%d] ", c + 1);
    esc(f, s->cand_kind[c]);
    fputs("</th>", f);
  }
  fputs("<th style=\"text-align:left\">Why</th></tr></thead><tbody>\n", f);
  for (int k = 0; k < s->n_parts; k++) {
    char nm[64], b[F3_LEN];
    fprintf(f, "<tr><td>%s</td>", pretty(s->parts[k], nm, sizeof nm));
    for (int c = 0; c < s->n_cand; c++) {
      const sel_cell *x = &s->cells[k * s->n_cand + c];
      int chosen = s->chosen[k] == c;
      fprintf(f, "<td>%s%s%s%s</td>", chosen ? "<b>" : "", x->model ? f3(b, x->value) : "&middot;",
              x->source == SEL_COMPUTED ? "*" : "", chosen ? "</b>" : "");
    }
    fputs("<td style=\"text-align:left;white-space:normal\">", f);
    esc(f, s->why[k]);
    fputs("</td></tr>\n", f);
  }
  fputs("</tbody></table><div class=\"notes\"><p>Candidates: ", f);
  for (int c = 0; c < s->n_cand; c++) {
    fprintf(f, "%s[%d] ", c ? "; " : "", c + 1);
    esc(f, s->cand_path[c]);
  }
  fputs(". A dot: the candidate has no model for that part.</p></div></section>\n", f);
  bundle_selection_free(s);
  return MSKX_OK;
}

static int kappa_section(FILE *f, const report_input *in, mskx_err *e) {
  const eval_results *res = in->res;
  fputs("<section><h2>Cohen's kappa by body part</h2><p class=\"lead\">This model beside the MURA paper's model and "
        "its three radiologists (Rajpurkar et al. 2017, Table 2). The paper's figures come from its own 207-study "
        "test set, not from these studies.</p>\n<table class=\"t\"><thead><tr><th>Part</th><th>Studies</th>"
        "<th>Abnormal</th><th>Kappa [95% CI]</th><th>AUROC [95% CI]</th><th>Sens.</th><th>Spec.</th>"
        "<th class=\"ref\">Paper model</th><th class=\"ref\">Rad. 1</th><th class=\"ref\">Rad. 2</th>"
        "<th class=\"ref\">Rad. 3</th></tr></thead><tbody>\n", f);
  for (int i = 0; i < res->n_parts; i++) kappa_row(f, &res->parts[i], 0);
  kappa_row(f, &res->overall, 1);
  fputs("</tbody></table>\n", f);
  int n = res->n_parts + 1;
  plot_kappa_row *rows = calloc((size_t)n, sizeof *rows);
  char (*names)[64] = calloc((size_t)n, sizeof *names);
  if (!rows || !names) {
    free(rows);
    free(names);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  for (int i = 0; i < res->n_parts; i++) kappa_plot_row(&rows[i], &res->parts[i], names[i], sizeof names[i]);
  kappa_plot_row(&rows[n - 1], &res->overall, names[n - 1], sizeof names[n - 1]);
  static const char *const ref_labels[] = {"paper model", "radiologists", "radiologists", "radiologists"};
  static const uint32_t ref_rgb[] = {0xe69f00, 0x7f7f7f, 0x7f7f7f, 0x7f7f7f};
  plot_spec sp = {1070, 70 + 30 * n, NULL, "Cohen's kappa", NULL, 0, 1, 0, 1, 0, 0, 0};
  png_buf b;
  int rc = plot_kappa(&sp, rows, n, ref_labels, ref_rgb, 4, &b, e);
  if (!rc) {
    fputs("<figure style=\"margin-top:16px\">", f);
    rc = img(f, &b, "Kappa per part with 95% intervals beside the paper's model and radiologists");
    fputs("</figure>\n", f);
    png_buf_free(&b);
  }
  fputs("<div class=\"notes\"><p>Intervals are 95% percentile-bootstrap intervals (studies resampled within each "
        "part). The paper's published kappa intervals are not shown: they were computed from the variance instead "
        "of the standard error of kappa and are too narrow.</p></div></section>\n", f);
  free(rows);
  free(names);
  return rc ? (rc == MSKX_ENOMEM ? err_set(e, rc, "out of memory") : rc) : MSKX_OK;
}

/* Scores and labels of one part ("overall": all) of the predicted studies. */
static int group_arrays(const eval_run *r, const char *part, double *s, int *y) {
  int n = 0;
  for (int i = 0; i < r->n_studies; i++) {
    const eval_study *st = &r->studies[i];
    if (!st->ok || (strcmp(part, "overall") && strcmp(part, st->part))) continue;
    s[n] = st->probability;
    y[n++] = st->ds->label;
  }
  return n;
}

static int roc_plot(const report_input *in, double *s, int *y, png_buf *out, mskx_err *e) {
  const eval_results *res = in->res;
  int ng = res->n_parts + 1, rc = MSKX_OK, ns = 0;
  roc_points *pts = calloc((size_t)ng, sizeof *pts);
  plot_series *ser = calloc((size_t)ng + 1, sizeof *ser);
  char (*lab)[96] = calloc((size_t)ng, sizeof *lab);
  if (!pts || !ser || !lab) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  for (int g = 0; !rc && g < ng; g++) {
    const eval_group *gr = g < res->n_parts ? &res->parts[g] : &res->overall;
    int n = group_arrays(in->run, gr->part, s, y);
    if (!isfinite(gr->value[METRIC_AUC])) continue; /* one class only: no curve */
    if ((rc = roc_curve(y, s, n, &pts[g], e))) break;
    char nm[64];
    snprintf(lab[g], sizeof lab[g], "%s  %.3f", pretty(gr->part, nm, sizeof nm), gr->value[METRIC_AUC]);
    int overall = g == ng - 1;
    ser[ns++] = (plot_series){pts[g].fpr, pts[g].tpr, pts[g].m, lab[g],
                              overall ? PLOT_INK : plot_palette[g % 8], overall ? 2.75 : 1.5, 0, 0};
  }
  double ox = 1 - res->overall.value[METRIC_SPECIFICITY], oy = res->overall.value[METRIC_SENSITIVITY];
  if (!rc) ser[ns++] = (plot_series){&ox, &oy, 1, NULL, 0xd55e00, 2.5, 0, 1};
  /* A little room beyond [0, 1] keeps curves that run along an edge visible. */
  plot_spec sp = {520, 470, "ROC curves (legend: AUROC)", "false positive rate (1 - specificity)",
                  "true positive rate (sensitivity)", -0.015, 1.015, -0.015, 1.015, 1, 0, 0};
  if (!rc) rc = plot_lines(&sp, ser, ns, out, e);
  for (int g = 0; pts && g < ng; g++) roc_curve_free(&pts[g]);
  free(pts);
  free(ser);
  free(lab);
  return rc;
}

static int curves_section(FILE *f, const report_input *in, mskx_err *e) {
  const eval_run *r = in->run;
  double *s = malloc(((size_t)r->n_studies + 1) * sizeof *s);
  int *y = malloc(((size_t)r->n_studies + 1) * sizeof *y);
  if (!s || !y) {
    free(s);
    free(y);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  png_buf roc = {0}, rel = {0};
  int rc = roc_plot(in, s, y, &roc, e);
  int n = group_arrays(r, "overall", s, y);
  calib c;
  report_calibration(s, y, n, &c);
  plot_spec sp = {520, 470, "Reliability (10 bins)", "predicted probability", "fraction abnormal", 0, 1, 0, 1, 0, 0, 1};
  if (!rc) rc = plot_reliability(&sp, c.mean_pred, c.frac_pos, c.count, REPORT_CAL_BINS, &rel, e);
  if (!rc) {
    char a[F3_LEN], b[F3_LEN];
    fputs("<section><h2>ROC curves and calibration</h2><p class=\"lead\">Study-level ROC per part (all studies in "
          "black; the dot is the operating point at the decision threshold) and how well the probabilities match "
          "observed frequencies.</p><div class=\"cols\"><figure>", f);
    rc = img(f, &roc, "ROC curves per part and overall");
    fputs("</figure><figure>", f);
    if (!rc) rc = img(f, &rel, "Reliability diagram with study counts per bin");
    fprintf(f, "<figcaption>Expected calibration error %s, Brier score %s (%d studies).</figcaption></figure>"
            "</div></section>\n", f3(a, c.ece), f3(b, c.brier), n);
    if (rc) rc = err_set(e, rc, "out of memory");
  }
  png_buf_free(&roc);
  png_buf_free(&rel);
  free(s);
  free(y);
  return rc;
}

static void confusion_cell(FILE *f, int64_t v, int64_t row, uint32_t rgb) {
  double a = row > 0 ? 0.08 + 0.5 * (double)v / row : 0.04;
  fprintf(f, "<td style=\"background:rgba(%u,%u,%u,%.2f)\">%lld</td>", (rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255,
          a, (long long)v);
}

static void confusion_section(FILE *f, const report_input *in) {
  const eval_results *res = in->res;
  fputs("<section><h2>Confusion matrices</h2><p class=\"lead\">Rows: the truth; columns: the decision. Green cells "
        "are correct, red ones errors; shading follows the share of the row.</p><div class=\"cms\">", f);
  for (int g = -1; g < res->n_parts; g++) {
    const eval_group *gr = g < 0 ? &res->overall : &res->parts[g];
    char nm[64];
    const confusion *c = &gr->cm;
    fprintf(f, "<div class=\"cm\"><div class=\"h\">%s <span>%d studies</span></div><table><tr><th></th>"
            "<th>normal</th><th>abnormal</th></tr><tr><th class=\"r\">normal</th>",
            pretty(gr->part, nm, sizeof nm), gr->n_studies);
    confusion_cell(f, c->tn, c->tn + c->fp, 0x009e73);
    confusion_cell(f, c->fp, c->tn + c->fp, 0xd55e00);
    fputs("</tr><tr><th class=\"r\">abnormal</th>", f);
    confusion_cell(f, c->fn, c->fn + c->tp, 0xd55e00);
    confusion_cell(f, c->tp, c->fn + c->tp, 0x009e73);
    fputs("</tr></table></div>", f);
  }
  fputs("</div></section>\n", f);
}

/* Loss (train and validation) and validation kappa/AUROC per epoch; with
 * several logs (per-part runs) validation curves per part. */
static int training_plots(const train_logs *L, png_buf *loss, png_buf *kap, mskx_err *e) {
  plot_series ls[2 * REPORT_MAX_LOGS], ks[2 * REPORT_MAX_LOGS];
  int nl = 0, nk = 0, multi = L->n > 1;
  double emin = INFINITY, emax = -INFINITY, lmax = 0, kmin = 0;
  for (int i = 0; i < L->n; i++) {
    const train_log *g = &L->log[i];
    uint32_t c = multi ? plot_palette[i % 8] : plot_palette[0];
    const char *lab = multi ? g->label : NULL;
    for (int k = 0; k < g->n; k++) {
      emin = fmin(emin, g->epoch[k]), emax = fmax(emax, g->epoch[k]);
      if (isfinite(g->train_loss[k])) lmax = fmax(lmax, g->train_loss[k]);
      if (isfinite(g->val_loss[k])) lmax = fmax(lmax, g->val_loss[k]);
      if (isfinite(g->val_kappa[k])) kmin = fmin(kmin, g->val_kappa[k]);
    }
    if (!multi) ls[nl++] = (plot_series){g->epoch, g->train_loss, g->n, "train loss", plot_palette[1], 2, 0, 1};
    ls[nl++] = (plot_series){g->epoch, g->val_loss, g->n, multi ? lab : "validation loss", c, 2, 0, 1};
    ks[nk++] = (plot_series){g->epoch, g->val_kappa, g->n, multi ? lab : "validation kappa", c, 2, 0, 1};
    if (!multi) ks[nk++] = (plot_series){g->epoch, g->val_auc, g->n, "validation AUROC", plot_palette[2], 2, 1, 1};
  }
  emin -= 0.4, emax += 0.4; /* the first and last epochs clear of the axes */
  plot_spec a = {520, 330, multi ? "Validation loss per part" : "Loss", "epoch", "loss", emin, emax, 0,
                 lmax > 0 ? lmax * 1.1 : 1, 0, 1, 1};
  plot_spec b = {520, 330, multi ? "Validation kappa per part" : "Validation kappa and AUROC", "epoch", NULL, emin,
                 emax, floor(kmin * 5) / 5, 1, 0, 1, 0};
  int rc = plot_lines(&a, ls, nl, loss, e);
  if (!rc) rc = plot_lines(&b, ks, nk, kap, e);
  return rc;
}

static int training_section(FILE *f, const report_input *in, mskx_err *e) {
  const train_logs *L = in->logs;
  if (!L || L->n == 0) {
    if (in->logs_note) {
      fputs("<section><h2>Training</h2><p class=\"empty\">", f);
      esc(f, in->logs_note);
      fputs("</p></section>\n", f);
    }
    return MSKX_OK;
  }
  png_buf loss = {0}, kap = {0};
  int rc = training_plots(L, &loss, &kap, e);
  if (!rc) {
    fputs("<section><h2>Training</h2><p class=\"lead\">From ", f);
    esc(f, L->dir);
    fputs(" (log.jsonl of <code>mskx train</code>; validation at the paper's 0.5 threshold).</p>"
          "<div class=\"cols\"><figure>", f);
    rc = img(f, &loss, "Loss per epoch");
    fputs("</figure><figure>", f);
    if (!rc) rc = img(f, &kap, "Validation kappa per epoch");
    fputs("</figure></div>", f);
    for (int i = 0; i < L->n; i++) {
      const train_log *g = &L->log[i];
      if (g->best < 0) continue;
      fprintf(f, "<p class=\"notes\">%s%sbest epoch %g: validation kappa %.3f, loss %.4f.</p>", g->label,
              g->label[0] ? ": " : "", g->epoch[g->best], g->val_kappa[g->best], g->val_loss[g->best]);
    }
    fputs("</section>\n", f);
    if (rc) rc = err_set(e, rc, "out of memory");
  }
  png_buf_free(&loss);
  png_buf_free(&kap);
  return rc;
}

static int gallery_section(FILE *f, const report_input *in) {
  static const char *const title[] = {"Most confident true positives", "Most confident false positives",
                                      "Most confident false negatives"};
  static const char *const what[] = {"abnormal, called abnormal", "normal, called abnormal",
                                     "abnormal, called normal"};
  const report_gallery *g = in->gallery;
  fputs("<section class=\"gal\"><h2>Examples with class activation maps</h2><p class=\"lead\">For each study the "
        "image with the highest probability, with the map of where the network's evidence for &lsquo;abnormal&rsquo; "
        "lies (bright = strong; CAM, equal to Grad-CAM for these networks).</p>", f);
  for (int k = 0; k < GALLERY_KINDS; k++) {
    fprintf(f, "<h3>%s <span>(%s)</span></h3>", title[k], what[k]);
    if (!g || g->n[k] == 0) {
      fputs("<p class=\"empty\">None among these studies.</p>", f);
      continue;
    }
    fputs("<div class=\"row\">", f);
    for (int i = 0; i < g->n[k]; i++) {
      const gallery_item *it = &g->items[k][i];
      const eval_study *st = &in->run->studies[it->study];
      char nm[64];
      fputs("<figure title=\"", f);
      esc(f, st->ds->path);
      fputs("\">", f);
      if (img(f, &it->thumb, st->ds->path)) return MSKX_ENOMEM;
      fprintf(f, "<figcaption><span class=\"p\">%s &middot; p = %.3f</span><br>image %d of %d, p = %.3f<br>"
              "<span class=\"path\">", pretty(st->part, nm, sizeof nm), st->probability, it->image + 1, st->n_used,
              it->image_prob);
      const char *shown = strstr(st->ds->path, st->part);  /* drop MURA-v1.1/<split>/XR_X/ */
      shown = shown && strchr(shown, '/') ? strchr(shown, '/') + 1 : st->ds->path;
      esc(f, shown);
      fputs("</span></figcaption></figure>", f);
    }
    fputs("</div>", f);
  }
  fputs("</section>\n", f);
  return MSKX_OK;
}

static void notes_section(FILE *f, const report_input *in) {
  fputs("<section class=\"notes\"><h2 style=\"color:var(--ink)\">Methods</h2>"
        "<p><b>Decisions.</b> A study is abnormal when its probability is greater than the threshold; the study "
        "probability aggregates its images' probabilities.", f);
  if (isnan(in->res->opt.threshold)) fputs(" Each part's model decides with its own threshold.", f);
  fputs("</p><p><b>Metrics.</b> Cohen's kappa, AUROC, sensitivity and specificity are computed as scikit-learn "
        "computes them, per part and over all studies. Intervals: the 2.5th and 97.5th percentiles over bootstrap "
        "resamples that redraw each part's studies with replacement.</p>"
        "<p><b>Reference numbers.</b> The MURA paper reports kappa for its DenseNet-169 ensemble and three "
        "radiologists on a 207-study test set that is not public; they are context, not a paired comparison.</p>",
        f);
  if (in->run->n_skipped || in->run->n_ok < in->run->n_studies)
    fprintf(f, "<p><b>Unreadable images.</b> %ld images could not be decoded and were skipped; %d studies without "
            "any readable image are left out (see metrics.json, run.failed_studies).</p>", in->run->n_skipped,
            in->run->n_studies - in->run->n_ok);
  fputs("</section>\n", f);
}

int report_render_html(const report_input *in, char **html, size_t *len, mskx_err *e) {
  *html = NULL;
  *len = 0;
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  if (!f) return err_set(e, MSKX_ENOMEM, "out of memory");
  head(f, in);
  details(f, in);
  int rc = kappa_section(f, in, e);
  if (!rc) rc = selection_section(f, in, e);
  if (!rc) rc = curves_section(f, in, e);
  if (!rc) confusion_section(f, in);
  if (!rc) rc = training_section(f, in, e);
  if (!rc && gallery_section(f, in)) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  if (!rc) {
    notes_section(f, in);
    fprintf(f, "<footer>Generated by mskx %s. Self-contained: every figure is embedded in this file.</footer>"
            "</main></body></html>\n", MSKX_VERSION);
  }
  if (fclose(f) != 0 || !buf) rc = rc ? rc : err_set(e, MSKX_ENOMEM, "out of memory");
  if (rc) {
    free(buf);
    return rc;
  }
  *html = buf;
  *len = n;
  return MSKX_OK;
}

int report_write_html(const char *path, const report_input *in, mskx_err *e) {
  char *html;
  size_t len;
  int rc = report_render_html(in, &html, &len, e);
  if (!rc) rc = file_write_atomic(path, html, len, e);
  free(html);
  return rc;
}
