/* PyTorch zip checkpoints (see pth.h). */
#include "io/pth.h"
#include <stdlib.h>
#include <string.h>
#include <zip.h>
#include "core/error.h"
#include "core/util.h"
#include "io/torch_pickle.h"

int pth_sniff(const unsigned char *head, size_t n) {
  return n >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4;
}

typedef struct pth_ctx {
  zip_t *za;
  const char *what;
  char prefix[256];   /* the archive's top folder, with its '/' */
} pth_ctx;

/* Reads one entry whole; libzip checks its CRC when the read reaches the end. */
static int read_entry(pth_ctx *c, zip_int64_t idx, size_t max, unsigned char **out, size_t *len, mskx_err *e) {
  *out = NULL;
  *len = 0;
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(c->za, (zip_uint64_t)idx, 0, &st) || !(st.valid & ZIP_STAT_SIZE))
    return err_set(e, MSKX_EFORMAT, "%s: zip entry %lld: %s", c->what, (long long)idx, zip_strerror(c->za));
  const char *name = (st.valid & ZIP_STAT_NAME) ? st.name : "?";
  if (st.size > max)
    return err_set(e, MSKX_ELIMIT, "%s: zip entry '%.200s' holds %llu bytes (limit %zu)", c->what, name,
                   (unsigned long long)st.size, max);
  zip_file_t *zf = zip_fopen_index(c->za, (zip_uint64_t)idx, 0);
  if (!zf) return err_set(e, MSKX_EFORMAT, "%s: zip entry '%.200s': %s", c->what, name, zip_strerror(c->za));
  size_t n = (size_t)st.size;
  unsigned char *buf = malloc(n ? n : 1);
  int rc = buf ? MSKX_OK : err_set(e, MSKX_ENOMEM, "out of memory for %zu bytes", n);
  size_t got = 0;
  while (!rc && got < n) {
    zip_int64_t r = zip_fread(zf, buf + got, n - got);
    if (r < 0)
      rc = err_set(e, MSKX_EFORMAT, "%s: zip entry '%.200s': %s", c->what, name, zip_file_strerror(zf));
    else if (r == 0)
      rc = err_set(e, MSKX_EFORMAT, "%s: zip entry '%.200s' ends after %zu of %zu bytes", c->what, name, got, n);
    got += r > 0 ? (size_t)r : 0;
  }
  unsigned char extra;
  if (!rc) {
    /* One more read reaches the end of the entry, where the CRC is verified. */
    zip_int64_t r = zip_fread(zf, &extra, 1);
    if (r < 0)
      rc = err_set(e, MSKX_EFORMAT, "%s: zip entry '%.200s': %s", c->what, name, zip_file_strerror(zf));
    else if (r > 0)
      rc = err_set(e, MSKX_EFORMAT, "%s: zip entry '%.200s' is longer than its header says", c->what, name);
  }
  if (zip_fclose(zf) && !rc) rc = err_set(e, MSKX_EFORMAT, "%s: zip entry '%.200s' could not be read", c->what, name);
  if (rc) {
    free(buf);
    return rc;
  }
  *out = buf;
  *len = n;
  return MSKX_OK;
}

/* The folder holding data.pkl: torch names it after the file ("resnet50-0676ba61/"). */
static int find_prefix(pth_ctx *c, zip_int64_t *pkl, mskx_err *e) {
  zip_int64_t n = zip_get_num_entries(c->za, 0);
  for (zip_int64_t i = 0; i < n; i++) {
    const char *name = zip_get_name(c->za, (zip_uint64_t)i, 0);
    if (!name) continue;
    const char *slash = strchr(name, '/');
    if (!slash || strcmp(slash, "/data.pkl") || (size_t)(slash - name) + 2 > sizeof c->prefix) continue;
    memcpy(c->prefix, name, (size_t)(slash - name) + 1);
    c->prefix[slash - name + 1] = 0;
    *pkl = i;
    return MSKX_OK;
  }
  return err_set(e, MSKX_EFORMAT,
                 "%s: a zip file but not a PyTorch checkpoint (no <folder>/data.pkl; torch.save writes one since "
                 "PyTorch 1.6)",
                 c->what);
}

static int check_byteorder(pth_ctx *c, mskx_err *e) {
  char name[300];
  snprintf(name, sizeof name, "%sbyteorder", c->prefix);
  zip_int64_t idx = zip_name_locate(c->za, name, 0);
  if (idx < 0) return MSKX_OK; /* older writers: always little-endian */
  unsigned char *b;
  size_t n;
  int rc = read_entry(c, idx, 16, &b, &n, e);
  if (rc) return rc;
  int little = n == 6 && !memcmp(b, "little", 6);
  free(b);
  return little ? MSKX_OK : err_set(e, MSKX_EUNSUPPORTED, "%s: big-endian checkpoints are not supported", c->what);
}

/* The dict of tensors: the top level or a training script's wrapper. */
static int select_state_dict(const pkl_obj *root, const char *what, const pkl_obj **out, mskx_err *e) {
  static const char *const wrappers[] = {"state_dict", "model", "model_state_dict"};
  if (root->kind != PKL_DICT)
    return err_set(e, MSKX_EFORMAT, "%s: the checkpoint holds a %s, not a state dict", what, pkl_kind_name(root->kind));
  for (size_t i = 0; i < sizeof wrappers / sizeof wrappers[0]; i++) {
    const pkl_obj *v = pkl_dict_get(root, wrappers[i]);
    if (v && v->kind == PKL_DICT) {
      *out = v;
      return MSKX_OK;
    }
  }
  *out = root;
  return MSKX_OK;
}

/* The largest storage index the tensor touches plus one (0 when empty). */
static int tensor_extent(const pkl_obj *t, int64_t *numel, int64_t *extent) {
  int64_t n = 1, last = t->offset;
  for (int d = 0; d < t->ndim; d++) {
    if (t->shape[d] == 0) {
      *numel = 0;
      *extent = 0;
      return 1;
    }
    if (t->shape[d] > PTH_MAX_NUMEL || n > PTH_MAX_NUMEL / t->shape[d]) return 0;
    n *= t->shape[d];
    if (t->stride[d] > ((int64_t)1 << 40) || t->shape[d] - 1 > (((int64_t)1 << 62) - last) / (t->stride[d] + 1))
      return 0;
    last += (t->shape[d] - 1) * t->stride[d];
  }
  *numel = n;
  *extent = last + 1;
  return 1;
}

/* Gathers a strided view of raw storage bytes into C-order floats. */
static void gather(const pkl_obj *t, const unsigned char *raw, float *dst, int64_t numel) {
  size_t es = elem_size(t->storage->dtype);
  int64_t idx[PKL_MAX_DIMS] = {0};
  for (int64_t i = 0; i < numel; i++) {
    int64_t off = t->offset;
    for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
    dst[i] = elem_to_f32(raw + (size_t)off * es, t->storage->dtype);
    for (int d = t->ndim - 1; d >= 0; d--) {
      if (++idx[d] < t->shape[d]) break;
      idx[d] = 0;
    }
  }
}

static int load_tensor(pth_ctx *c, const char *name, const pkl_obj *t, htensor *out, mskx_err *e) {
  int64_t numel, extent;
  if (!tensor_extent(t, &numel, &extent))
    return err_set(e, MSKX_ELIMIT, "%s: tensor '%.200s' is larger than %lld elements or its strides are absurd",
                   c->what, name, (long long)PTH_MAX_NUMEL);
  const pkl_obj *s = t->storage;
  size_t es = elem_size(s->dtype);
  if (extent > s->numel)
    return err_set(e, MSKX_EFORMAT, "%s: tensor '%.200s' reaches element %lld of storage '%s', which has %lld", c->what,
                   name, (long long)extent - 1, s->s, (long long)s->numel);
  char ename[300];
  snprintf(ename, sizeof ename, "%sdata/%s", c->prefix, s->s);
  zip_int64_t idx = zip_name_locate(c->za, ename, 0);
  if (idx < 0) return err_set(e, MSKX_EFORMAT, "%s: storage '%s' of tensor '%.200s' is missing", c->what, s->s, name);
  unsigned char *raw = NULL;
  size_t len = 0;
  /* The declared size bounds the read; a longer entry is refused below. */
  size_t want = (size_t)s->numel * es;
  if ((uint64_t)s->numel > PTH_MAX_FILE_BYTES / es)
    return err_set(e, MSKX_ELIMIT, "%s: storage '%s' declares %lld elements", c->what, s->s, (long long)s->numel);
  int rc = read_entry(c, idx, want, &raw, &len, e);
  if (!rc && len < (size_t)extent * es)
    rc = err_set(e, MSKX_EFORMAT, "%s: storage '%s' holds %zu bytes, but tensor '%.200s' needs %lld", c->what, s->s,
                 len, name, (long long)extent * (long long)es);
  if (rc) {
    free(raw);
    return rc;
  }
  out->data = malloc((size_t)(numel ? numel : 1) * sizeof(float));
  out->name = str_dup(name);
  if (!out->data || !out->name) {
    free(raw);
    htensor_release(out);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  out->ndim = t->ndim;
  memcpy(out->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
  gather(t, raw, out->data, numel);
  free(raw);
  return MSKX_OK;
}

static int read_state_dict(pth_ctx *c, const pkl_obj *sd, st_file *f, mskx_err *e) {
  if (sd->len > PTH_MAX_TENSORS)
    return err_set(e, MSKX_ELIMIT, "%s: %zu entries (limit %d)", c->what, sd->len, PTH_MAX_TENSORS);
  f->tensors = calloc(sd->len ? sd->len : 1, sizeof *f->tensors);
  if (!f->tensors) return err_set(e, MSKX_ENOMEM, "out of memory");
  for (size_t i = 0; i < sd->len; i++) {
    const pkl_obj *k = sd->items[i], *v = sd->vals[i];
    if (k->kind != PKL_STR) return err_set(e, MSKX_EFORMAT, "%s: a state-dict key is a %s", c->what, pkl_kind_name(k->kind));
    if (v->kind != PKL_TENSOR)
      return err_set(e, MSKX_EFORMAT, "%s: state-dict entry '%.200s' is a %s, not a tensor", c->what, k->s,
                     pkl_kind_name(v->kind));
    int rc = load_tensor(c, k->s, v, &f->tensors[f->n_tensors], e);
    if (rc) return rc;
    f->n_tensors++;
  }
  if (!f->n_tensors) return err_set(e, MSKX_EFORMAT, "%s: the state dict is empty", c->what);
  return st_check_unique(f, c->what, e);
}

int pth_read_mem(const unsigned char *buf, size_t len, const char *what, st_file **out, mskx_err *e) {
  *out = NULL;
  zip_error_t ze;
  zip_error_init(&ze);
  pth_ctx c = {.what = what};
  zip_source_t *src = zip_source_buffer_create(buf, len, 0, &ze);
  if (src && !(c.za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze))) zip_source_free(src);
  if (!c.za) {
    int rc = err_set(e, MSKX_EFORMAT, "%s: not a readable zip archive (%s)", what, zip_error_strerror(&ze));
    zip_error_fini(&ze);
    return rc;
  }
  zip_error_fini(&ze);
  zip_int64_t pkl_idx = -1;
  unsigned char *pkl = NULL;
  size_t pkl_len = 0;
  pkl_doc *doc = NULL;
  const pkl_obj *sd = NULL;
  st_file *f = calloc(1, sizeof *f);
  int rc = f ? MSKX_OK : err_set(e, MSKX_ENOMEM, "out of memory");
  if (!rc) rc = find_prefix(&c, &pkl_idx, e);
  if (!rc) rc = check_byteorder(&c, e);
  if (!rc) rc = read_entry(&c, pkl_idx, PTH_MAX_PICKLE_BYTES, &pkl, &pkl_len, e);
  if (!rc) rc = pkl_parse(pkl, pkl_len, what, &doc, e);
  if (!rc) rc = select_state_dict(doc->root, what, &sd, e);
  if (!rc) rc = read_state_dict(&c, sd, f, e);
  pkl_free(doc);
  free(pkl);
  zip_discard(c.za);
  if (rc) {
    st_free(f);
    return rc;
  }
  *out = f;
  return MSKX_OK;
}

int pth_read(const char *path, st_file **out, mskx_err *e) {
  unsigned char *buf = NULL;
  size_t len = 0;
  int rc = file_read_all(path, PTH_MAX_FILE_BYTES, &buf, &len, e);
  if (!rc) rc = pth_read_mem(buf, len, path, out, e);
  free(buf);
  return rc;
}
