/* The endpoints: routing, JSON answers, and POST /v1/predict (multipart or
 * raw image bodies through the prediction queue, queue.c). */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "core/error.h"
#include "core/util.h"
#include "serve/multipart.h"
#include "serve/serve_internal.h"

#define PART_VALUE_MAX 31   /* XR_* names are short; longer values are refused */
#define FORM_FIELDS_MAX 16  /* non-image parts (e.g. 'part') allowed besides the images */

void reply_free(reply *r) {
  if (!r->is_static) free(r->body);
  r->body = NULL;
}

/* Takes a cJSON tree (deleted here) as the body. */
static void reply_json(reply *r, int status, cJSON *o) {
  char *s = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  reply_free(r);
  if (!s) {
    static const char oom[] = "{\"error\":\"out of memory\"}";
    r->status = 500;
    r->body = (char *)oom;
    r->len = sizeof oom - 1;
    r->is_static = 1;
  } else {
    r->status = status;
    r->body = s;
    r->len = strlen(s);
    r->is_static = 0;
  }
  r->content_type = "application/json";
}

/* A message cut at its buffer's end may end inside a UTF-8 sequence (a
 * client's file name); JSON needs whole characters, so the piece goes. */
static void trim_partial_utf8(char *s) {
  size_t n = strlen(s), k = n;
  while (k > 0 && n - k < 3 && ((unsigned char)s[k - 1] & 0xC0) == 0x80) k--;
  if (k == 0 || (unsigned char)s[k - 1] < 0xC0) return;
  unsigned char lead = (unsigned char)s[k - 1];
  size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
  if (n - (k - 1) < want) s[k - 1] = 0;
}

void reply_error(reply *r, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if ((size_t)vsnprintf(r->error, sizeof r->error, fmt, ap) >= sizeof r->error) trim_partial_utf8(r->error);
  va_end(ap);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "error", r->error);
  reply_json(r, status, o);
}

static const struct {
  const char *path;
  int route;
  int post;   /* 1: POST only; 0: GET and HEAD */
} routes[] = {
    {"/", ROUTE_VIEWER, 0},           {"/index.html", ROUTE_VIEWER, 0}, {"/v1/health", ROUTE_HEALTH, 0},
    {"/v1/model", ROUTE_MODEL, 0},    {"/metrics", ROUTE_METRICS, 0},   {"/v1/predict", ROUTE_PREDICT, 1},
    {"/v1/health/live", ROUTE_LIVE, 0}, {"/v1/health/ready", ROUTE_READY, 0},
};

int route_find(const char *path, const char *method, reply *r) {
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    if (strcmp(path, routes[i].path)) continue;
    int ok = routes[i].post ? !strcmp(method, "POST") : !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (ok) return routes[i].route;
    r->allow = routes[i].post ? "POST" : "GET, HEAD";
    reply_error(r, 405, "method %s is not allowed on %s (allowed: %s)", method, path, r->allow);
    return ROUTE_NONE;
  }
  reply_error(r, 404, "no such endpoint: %s", path);
  return ROUTE_NONE;
}

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

/* A bundle/ensemble description node (and its members) for clients: each
 * node's "path" becomes "file", its base name; nothing else changes. */
static void name_nodes(cJSON *node) {
  if (!cJSON_IsObject(node)) return;
  cJSON *path = cJSON_DetachItemFromObjectCaseSensitive(node, "path");
  if (cJSON_IsString(path)) cJSON_AddStringToObject(node, "file", base_name(path->valuestring));
  cJSON_Delete(path);
  cJSON *c;
  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(node, "models")) name_nodes(c);
  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(node, "members")) name_nodes(c);
  name_nodes(cJSON_GetObjectItemCaseSensitive(node, "default"));
}

/* The model's description; with_meta adds its metadata object. */
static cJSON *model_json(const mskx_model *m, int with_meta) {
  struct mskx_model_info in;
  cJSON *o = cJSON_CreateObject();
  if (mskx_model_info(m, &in)) return o;
  cJSON_AddStringToObject(o, "kind", in.kind_name);
  cJSON_AddStringToObject(o, "file", base_name(in.path));
  cJSON_AddStringToObject(o, "arch", in.arch);
  if (in.size > 0) cJSON_AddNumberToObject(o, "size", in.size);
  else cJSON_AddNullToObject(o, "size");
  cJSON *parts = cJSON_AddArrayToObject(o, "parts");
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", in.parts);
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
    cJSON_AddItemToArray(parts, cJSON_CreateString(t));
  if (in.threshold >= 0) cJSON_AddNumberToObject(o, "threshold", in.threshold);
  else cJSON_AddNullToObject(o, "threshold");   /* bundle members decide with their own */
  cJSON_AddNumberToObject(o, "n_members", in.n_members);
  if (in.method && in.method[0]) cJSON_AddStringToObject(o, "method", in.method);
  if (in.precision) cJSON_AddStringToObject(o, "precision", in.precision);
  if (with_meta) {
    cJSON *meta = in.metadata_json ? cJSON_Parse(in.metadata_json) : NULL;
    if (in.kind != MSKX_KIND_MODEL) name_nodes(meta);   /* a model's metadata has no nodes */
    cJSON_AddItemToObject(o, "metadata", meta ? meta : cJSON_CreateObject());
    cJSON_AddStringToObject(o, "mskx_version", MSKX_VERSION);
  }
  return o;
}

/* Liveness: the process answers. Readiness: the model is loaded (it is,
 * before the server starts), the server is not stopping and its queue has
 * room; else 503, so that a balancer sends new studies elsewhere.
 * /v1/health stays as it was: 200 {"status": "ok"} while serving. */
static void health(server *s, int route, reply *r) {
  int qlen, qcap;
  queue_state(s, &qlen, &qcap);
  pthread_mutex_lock(&s->mu);
  int stopping = s->stopping;
  pthread_mutex_unlock(&s->mu);
  int ready = !stopping && qlen < qcap;
  cJSON *o = cJSON_CreateObject();
  const char *status = route == ROUTE_LIVE ? "live" : route == ROUTE_READY ? (ready ? "ready" : "not ready") : "ok";
  cJSON_AddStringToObject(o, "status", status);
  if (route == ROUTE_READY) {
    cJSON_AddBoolToObject(o, "ready", ready);
    cJSON_AddBoolToObject(o, "model_loaded", s->model != NULL);
    cJSON_AddNumberToObject(o, "queue_length", qlen);
    cJSON_AddNumberToObject(o, "queue_capacity", qcap);
    struct mskx_model_info in;
    if (s->model && !mskx_model_info(s->model, &in) && in.precision)
      cJSON_AddStringToObject(o, "precision", in.precision);   /* --precision auto's choice */
    /* How the capacity was chosen (docs/serve.md, the --queue default). */
    serve_queue_info qi;
    server_queue_info(s, &qi);
    cJSON_AddBoolToObject(o, "queue_derived", qi.derived);
    cJSON_AddNumberToObject(o, "seconds_per_image", qi.per_image_s);
    cJSON_AddNumberToObject(o, "schedulers", qi.schedulers);
    cJSON_AddNumberToObject(o, "queue_work_seconds", qi.work_s);
    /* How --max-batch was chosen: derived from the batch trial's and one
     * study's seconds per image (serve_max_batch_default), or set. */
    cJSON_AddNumberToObject(o, "max_batch", qi.max_batch);
    cJSON_AddBoolToObject(o, "max_batch_derived", qi.max_batch_derived);
    cJSON_AddNumberToObject(o, "batch_images", qi.batch_images);
    cJSON_AddNumberToObject(o, "batch_seconds_per_image", qi.batch_per_image_s);
    if (qi.batch_note[0]) cJSON_AddStringToObject(o, "batch_note", qi.batch_note);
  }
  reply_json(r, route == ROUTE_READY && !ready ? 503 : 200, o);
  if (route == ROUTE_READY && !ready) r->retry_after = stopping ? SERVE_RETRY_AFTER : queue_retry_after(s);
}

void handle_get(server *s, int route, reply *r) {
  if (route == ROUTE_VIEWER) {
    r->status = 200;
    r->body = (char *)serve_viewer_html;
    r->len = serve_viewer_html_len;
    r->is_static = 1;
    r->content_type = "text/html; charset=utf-8";
  } else if (route == ROUTE_HEALTH || route == ROUTE_LIVE || route == ROUTE_READY) {
    health(s, route, r);
  } else if (route == ROUTE_MODEL) {
    reply_json(r, 200, model_json(s->model, 1));
  } else if (route == ROUTE_METRICS) {
    size_t len = 0;
    pthread_mutex_lock(&s->mu);
    long in_flight = s->in_flight;
    size_t buffered = s->buffered;
    pthread_mutex_unlock(&s->mu);
    int qlen, qcap;
    queue_state(s, &qlen, &qcap);
    char *text = metrics_render(&s->metrics, in_flight, buffered, qlen, qcap, &len);
    if (!text) {
      reply_error(r, 500, "out of memory");
      return;
    }
    r->status = 200;
    r->body = text;
    r->len = len;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
  }
}

static char *base64(const unsigned char *p, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
  if (!out) return NULL;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    *o++ = tab[v >> 18 & 63];
    *o++ = tab[v >> 12 & 63];
    *o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
    *o++ = i + 2 < n ? tab[v & 63] : '=';
  }
  *o = 0;
  return out;
}

/* Library errors name the model files by the paths they were loaded from
 * (a bundle's "no model for part" error, any prediction error's prefix).
 * Clients get the file's name instead: every known server path in msg
 * (the model's and its members', longest first so that none is cut into)
 * is replaced by its base name. */
static void client_message(const server *s, const char *msg, char *out, size_t n) {
  size_t o = 0;
  for (size_t i = 0; msg[i] && o + 1 < n;) {
    int k = 0;
    while (k < s->n_paths && strncmp(msg + i, s->paths[k], strlen(s->paths[k]))) k++;
    if (k < s->n_paths) {
      const char *name = base_name(s->paths[k]);
      for (size_t j = 0; name[j] && o + 1 < n; j++) out[o++] = name[j];
      i += strlen(s->paths[k]);
    } else {
      out[o++] = msg[i++];
    }
  }
  out[o] = 0;
}

static int by_length_desc(const void *a, const void *b) {
  size_t x = strlen(*(char *const *)a), y = strlen(*(char *const *)b);
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Collects the "path" of every node of a bundle/ensemble description. */
static int collect_paths(server *s, const cJSON *node, int cap) {
  if (!cJSON_IsObject(node)) return 0;
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(node, "path");
  if (cJSON_IsString(p) && p->valuestring[0]) {
    if (s->n_paths == cap) return -1;
    if (!(s->paths[s->n_paths] = str_dup(p->valuestring))) return -1;
    s->n_paths++;
  }
  const cJSON *c;
  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(node, "models")) if (collect_paths(s, c, cap)) return -1;
  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(node, "members")) if (collect_paths(s, c, cap)) return -1;
  return collect_paths(s, cJSON_GetObjectItemCaseSensitive(node, "default"), cap);
}

static int count_nodes(const cJSON *node) {
  if (!cJSON_IsObject(node)) return 0;
  int n = 1;
  const cJSON *c;
  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(node, "models")) n += count_nodes(c);
  cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(node, "members")) n += count_nodes(c);
  return n + count_nodes(cJSON_GetObjectItemCaseSensitive(node, "default"));
}

int client_names_init(server *s, mskx_err *e) {
  struct mskx_model_info in;
  if (mskx_model_info(s->model, &in)) return err_set(e, MSKX_EINVAL, "server: no model information");
  cJSON *meta = in.kind != MSKX_KIND_MODEL && in.metadata_json ? cJSON_Parse(in.metadata_json) : NULL;
  int cap = 1 + count_nodes(meta);
  int rc = !(s->paths = calloc((size_t)cap, sizeof *s->paths));
  if (!rc && in.path && in.path[0]) rc = !(s->paths[s->n_paths++] = str_dup(in.path));
  if (!rc) rc = collect_paths(s, meta, cap);
  cJSON_Delete(meta);
  if (rc) return err_set(e, MSKX_ENOMEM, "out of memory");
  qsort(s->paths, (size_t)s->n_paths, sizeof *s->paths, by_length_desc);
  return MSKX_OK;
}

void client_names_free(server *s) {
  for (int i = 0; i < s->n_paths; i++) free(s->paths[i]);
  free(s->paths);
  s->paths = NULL;
  s->n_paths = 0;
}

static void reply_library_error(const server *s, reply *r, int status, const mskx_err *e) {
  char msg[sizeof e->msg];
  client_message(s, e->msg, msg, sizeof msg);
  reply_error(r, status, "%s", msg);
}

/* HTTP status for a library error: the client's fault unless it is ours. */
static int status_of(int code) {
  switch (code) {
    case MSKX_EINVAL: case MSKX_EFORMAT: case MSKX_ESHAPE: return 400;
    case MSKX_ELIMIT: return 413;
    case MSKX_EUNSUPPORTED: return 415;
    case MSKX_ENOMEM: case MSKX_EBUSY: return 503;
    default: return 500;
  }
}

static int acceptable_image_type(const char *t) {
  return !t[0] || !strcmp(t, "image/png") || !strcmp(t, "image/jpeg") || !strcmp(t, "application/dicom") ||
         !strcmp(t, "application/octet-stream");
}

/* A part name: letters and '_' only (the library maps "wrist" to XR_WRIST). */
static int set_part(char *out, const char *v, size_t n, reply *r) {
  if (n > PART_VALUE_MAX) {
    reply_error(r, 400, "part: longer than %d characters", PART_VALUE_MAX);
    return -1;
  }
  for (size_t i = 0; i < n; i++)
    if (!isalpha((unsigned char)v[i]) && v[i] != '_') {
      reply_error(r, 400, "part: only letters and '_' are allowed (e.g. XR_WRIST or wrist)");
      return -1;
    }
  memcpy(out, v, n);
  out[n] = 0;
  return 0;
}

typedef struct study {
  mskx_encoded_image *imgs;   /* max_images slots */
  int n;
  char part[PART_VALUE_MAX + 1];
  mp_part *parts;
} study;

static int add_image(study *st, int max_images, const unsigned char *p, size_t len, const char *name, reply *r) {
  if (st->n >= max_images) {
    reply_error(r, 413, "too many images: at most %d per study", max_images);
    return -1;
  }
  if (len == 0) {
    reply_error(r, 400, "%s: empty image (0 bytes)", name);
    return -1;
  }
  st->imgs[st->n++] = (mskx_encoded_image){p, len, name};
  return 0;
}

static int study_from_multipart(server *s, const char *ct, request *rq, study *st, reply *r) {
  char boundary[MP_BOUNDARY_MAX + 1];
  mskx_err e = {0, ""};
  int n = 0;
  if (multipart_boundary(ct, boundary, &e) ||
      multipart_parse(rq->body, rq->len, boundary, s->cfg.max_images + FORM_FIELDS_MAX, &st->parts, &n, &e)) {
    if (e.code == MSKX_ELIMIT)
      reply_error(r, 413, "too many parts: at most %d images per study and %d other form fields", s->cfg.max_images,
                  FORM_FIELDS_MAX);
    else
      reply_error(r, 400, "%s", e.msg);
    return -1;
  }
  for (int i = 0; i < n; i++) {
    mp_part *p = &st->parts[i];
    if (p->has_filename || !strncmp(p->content_type, "image/", 6) || !strcmp(p->content_type, "application/dicom")) {
      const char *name = p->filename[0] ? p->filename : p->name;
      if (!acceptable_image_type(p->content_type)) {
        reply_error(r, 415, "%s: content type %s is not image/png, image/jpeg or application/dicom", name,
                    p->content_type);
        return -1;
      }
      if (add_image(st, s->cfg.max_images, p->data, p->len, name, r)) return -1;
    } else if (!strcmp(p->name, "part")) {
      if (set_part(st->part, (const char *)p->data, p->len, r)) return -1;
    }
  }
  return 0;
}

/* The study of a request: its images, part and options. */
static int read_study(server *s, struct MHD_Connection *c, request *rq, study *st, reply *r) {
  const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  char type[64];
  media_type(ct, type, sizeof type);
  if (!strcmp(type, "multipart/form-data")) {
    if (study_from_multipart(s, ct, rq, st, r)) return -1;
  } else if (!strcmp(type, "image/png") || !strcmp(type, "image/jpeg") || !strcmp(type, "application/dicom")) {
    const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "name");
    if (add_image(st, s->cfg.max_images, rq->body, rq->len, name && name[0] ? name : "image", r)) return -1;
  } else {
    reply_error(r, 415, "Content-Type %s is not multipart/form-data, image/png, image/jpeg or application/dicom",
                type[0] ? type : "(none)");
    return -1;
  }
  if (st->n == 0) {
    reply_error(r, 400, "no images in the request (send files in multipart/form-data, e.g. field 'images')");
    return -1;
  }
  const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "part");
  if (q && q[0] && set_part(st->part, q, strlen(q), r)) return -1;
  return 0;
}

/* ?cam=1 and ?alpha=A. */
static int read_options(struct MHD_Connection *c, mskx_predict_options *po, reply *r) {
  mskx_predict_options_default(po);
  const char *cam = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cam");
  if (cam && (!strcmp(cam, "1") || !strcmp(cam, "true"))) po->want_overlay = 1;
  else if (cam && cam[0] && strcmp(cam, "0") && strcmp(cam, "false")) {
    reply_error(r, 400, "cam: expected 1, true, 0 or false");
    return -1;
  }
  const char *img = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "image");
  if (img && (!strcmp(img, "1") || !strcmp(img, "true"))) po->want_image = 1;
  else if (img && img[0] && strcmp(img, "0") && strcmp(img, "false")) {
    reply_error(r, 400, "image: expected 1, true, 0 or false");
    return -1;
  }
  const char *a = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "alpha");
  if (a && a[0]) {
    char *end;
    double v = strtod(a, &end);
    if (*end || !(v > 0 && v <= 1)) {
      reply_error(r, 400, "alpha: expected a number in (0, 1]");
      return -1;
    }
    po->overlay_alpha = (float)v;
  }
  return 0;
}

static cJSON *result_json(server *s, const mskx_result *res, double t0) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "probability", res->probability);
  cJSON_AddStringToObject(o, "decision", res->abnormal ? "abnormal" : "normal");
  cJSON_AddBoolToObject(o, "abnormal", res->abnormal);
  cJSON_AddNumberToObject(o, "threshold", res->threshold);
  if (res->part[0]) cJSON_AddStringToObject(o, "part", res->part);
  else cJSON_AddNullToObject(o, "part");
  if (res->study_uid[0]) cJSON_AddStringToObject(o, "study_uid", res->study_uid);
  cJSON *imgs = cJSON_AddArrayToObject(o, "images");
  for (int i = 0; i < res->n_images; i++) {
    const mskx_image_result *ir = &res->images[i];
    cJSON *im = cJSON_CreateObject();
    cJSON_AddStringToObject(im, "name", ir->name);
    cJSON_AddNumberToObject(im, "width", ir->width);
    cJSON_AddNumberToObject(im, "height", ir->height);
    cJSON_AddNumberToObject(im, "probability", ir->probability);
    if (ir->overlay_png) {
      char *b64 = base64(ir->overlay_png, ir->overlay_png_len);
      if (!b64) {
        cJSON_Delete(im);
        cJSON_Delete(o);
        return NULL;
      }
      cJSON_AddStringToObject(im, "overlay", b64);
      free(b64);
    }
    if (ir->image_png) {
      char *b64 = base64(ir->image_png, ir->image_png_len);
      if (!b64) {
        cJSON_Delete(im);
        cJSON_Delete(o);
        return NULL;
      }
      cJSON_AddStringToObject(im, "image", b64);
      free(b64);
    }
    cJSON_AddItemToArray(imgs, im);
  }
  if (res->n_members)
    cJSON_AddItemToObject(o, "member_probabilities", cJSON_CreateDoubleArray(res->member_probabilities, res->n_members));
  cJSON *mj = model_json(s->model, 0);
  cJSON_AddStringToObject(mj, "used", base_name(res->model_used ? res->model_used : ""));
  cJSON_AddItemToObject(o, "model", mj);
  cJSON_AddNumberToObject(o, "elapsed_ms", round((now_seconds() - t0) * 1e4) / 10);
  return o;
}

void handle_predict(server *s, struct MHD_Connection *c, request *rq, reply *r) {
  study *st = calloc(1, sizeof *st);
  mskx_predict_options po;
  if (!st || !(st->imgs = calloc((size_t)s->cfg.max_images, sizeof *st->imgs))) {
    reply_error(r, 503, "out of memory");
    free(st);
    return;
  }
  if (!read_study(s, c, rq, st, r) && !read_options(c, &po, r)) {
    mskx_result *res = NULL;
    mskx_err e = {0, ""};
    const char *fmt = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
    int want_sr = fmt && !strcmp(fmt, "sr");
    if (fmt && fmt[0] && !want_sr && strcmp(fmt, "json")) {
      reply_error(r, 400, "format: expected json or sr");
    } else if (serve_predict(s, c, rq, st->imgs, st->n, st->part[0] ? st->part : NULL, &po, &res, &e)) {
      reply_library_error(s, r, status_of(e.code), &e);
      /* Queue full or deadline: the queue's estimated wait; decode budget, shutdown: 1 s. */
      if (e.code == MSKX_EBUSY) r->retry_after = rq->retry_after > 0 ? rq->retry_after : SERVE_RETRY_AFTER;
    } else if (want_sr) {
      /* A DICOM Structured Report of the study instead of JSON (docs/dicom.md). */
      unsigned char *sr = NULL;
      size_t len = 0;
      if (mskx_structured_report(s->model, res, st->imgs, st->n, &sr, &len, &e)) {
        reply_library_error(s, r, status_of(e.code), &e);
      } else {
        reply_free(r);
        r->status = 200;
        r->body = (char *)sr;
        r->len = len;
        r->is_static = 0;
        r->content_type = "application/dicom";
        r->n_images = res->n_images;
        metrics_prediction(&s->metrics, now_seconds() - rq->t0, res->n_images);
      }
    } else {
      cJSON *o = result_json(s, res, rq->t0);
      if (o) {
        reply_json(r, 200, o);
        r->n_images = res->n_images;
        metrics_prediction(&s->metrics, now_seconds() - rq->t0, res->n_images);
      } else {
        reply_error(r, 503, "out of memory");
      }
    }
    mskx_result_free(res);
  }
  free(st->parts);
  free(st->imgs);
  free(st);
}
