/* Keras HDF5 weight files (see keras_h5.h). libhdf5 prints its error stack
 * by default; the automatic printing is switched off for the duration of a
 * read and restored afterwards, so the library prints nothing (libhdf5 is
 * not thread-safe in its serial build, so reads are not concurrent anyway). */
#include "io/keras_h5.h"
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"

static const unsigned char h5_signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

int kh5_sniff(const unsigned char *head, size_t n) { return n >= 8 && !memcmp(head, h5_signature, 8); }

typedef struct strs {
  char **v;
  int n;
} strs;

static void strs_free(strs *s) {
  for (int i = 0; i < s->n; i++) free(s->v[i]);
  free(s->v);
  s->v = NULL;
  s->n = 0;
}

static int strs_add(strs *s, const char *p, size_t len, int max, mskx_err *e) {
  if (s->n >= max) return err_set(e, MSKX_ELIMIT, "more than %d names", max);
  char **v = realloc(s->v, (size_t)(s->n + 1) * sizeof *v);
  if (!v) return err_set(e, MSKX_ENOMEM, "out of memory");
  s->v = v;
  char *c = malloc(len + 1);
  if (!c) return err_set(e, MSKX_ENOMEM, "out of memory");
  memcpy(c, p, len);
  c[len] = 0;
  s->v[s->n++] = c;
  return MSKX_OK;
}

/* Appends the strings of one string attribute (fixed or variable length,
 * scalar or 1-D) to out. */
static int read_str_attr(hid_t obj, const char *name, const char *what, strs *out, int max, size_t max_len,
                         mskx_err *e) {
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return err_set(e, MSKX_EFORMAT, "%s: attribute '%s' cannot be opened", what, name);
  hid_t t = H5Aget_type(a), s = H5Aget_space(a), mt = -1;
  int rc = MSKX_OK;
  hssize_t n = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
  /* Keras writes a layer without weights as an empty float array. */
  int empty = n == 0;
  if (!empty && (t < 0 || H5Tget_class(t) != H5T_STRING))
    rc = err_set(e, MSKX_EFORMAT, "%s: attribute '%s' is not a string attribute", what, name);
  else if (n < 0 || n > max)
    rc = err_set(e, MSKX_ELIMIT, "%s: attribute '%s' holds %lld strings (limit %d)", what, name, (long long)n, max);
  if (!rc && !empty && H5Tis_variable_str(t) > 0) {
    char **buf = calloc((size_t)(n ? n : 1), sizeof *buf);
    mt = H5Tcopy(H5T_C_S1);
    if (!buf) rc = err_set(e, MSKX_ENOMEM, "out of memory");
    if (!rc && (mt < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, buf) < 0))
      rc = err_set(e, MSKX_EFORMAT, "%s: attribute '%s' cannot be read", what, name);
    for (hssize_t i = 0; !rc && i < n; i++) {
      size_t len = buf[i] ? strlen(buf[i]) : 0;
      if (len > max_len) rc = err_set(e, MSKX_ELIMIT, "%s: attribute '%s': a string of %zu bytes", what, name, len);
      if (!rc) rc = strs_add(out, buf[i] ? buf[i] : "", len, max, e);
    }
    if (buf && mt >= 0) H5Dvlen_reclaim(mt, s, H5P_DEFAULT, buf);
    free(buf);
  } else if (!rc && !empty) {
    size_t sz = H5Tget_size(t);
    size_t total;
    if (sz == 0 || sz > max_len || !size_mul(sz, (size_t)(n ? n : 1), &total))
      rc = err_set(e, MSKX_ELIMIT, "%s: attribute '%s' has strings of %zu bytes", what, name, sz);
    char *buf = rc ? NULL : calloc(total + 1, 1);
    if (!rc && !buf) rc = err_set(e, MSKX_ENOMEM, "out of memory");
    mt = rc ? -1 : H5Tcopy(H5T_C_S1);
    /* NULLPAD in memory too: no conversion that could drop a last character. */
    if (!rc && (mt < 0 || H5Tset_size(mt, sz) < 0 || H5Tset_strpad(mt, H5T_STR_NULLPAD) < 0 || H5Aread(a, mt, buf) < 0))
      rc = err_set(e, MSKX_EFORMAT, "%s: attribute '%s' cannot be read", what, name);
    for (hssize_t i = 0; !rc && i < n; i++) {
      const char *p = buf + (size_t)i * sz;
      rc = strs_add(out, p, strnlen(p, sz), max, e);
    }
    free(buf);
  }
  if (mt >= 0) H5Tclose(mt);
  if (t >= 0) H5Tclose(t);
  if (s >= 0) H5Sclose(s);
  H5Aclose(a);
  return rc;
}

/* Keras's load_attributes_from_hdf5_group: name, or name0, name1, ... */
static int read_names(hid_t obj, const char *name, const char *what, strs *out, int max, int *found, mskx_err *e) {
  *found = H5Aexists(obj, name) > 0;
  if (*found) return read_str_attr(obj, name, what, out, max, KH5_MAX_NAME, e);
  char chunk[64];
  for (int i = 0; i < 1000; i++) {
    snprintf(chunk, sizeof chunk, "%s%d", name, i);
    if (H5Aexists(obj, chunk) <= 0) break;
    *found = 1;
    int rc = read_str_attr(obj, chunk, what, out, max, KH5_MAX_NAME, e);
    if (rc) return rc;
  }
  return MSKX_OK;
}

/* Names are HDF5 paths relative to their group: no absolute paths, no "..". */
static int safe_path(const char *p) {
  if (!*p || p[0] == '/' || strstr(p, "..") || strstr(p, "//")) return 0;
  for (const char *c = p; *c; c++)
    if ((unsigned char)*c < 0x20) return 0;
  return 1;
}

/* Refuses a chunked layout whose chunks libhdf5 would allocate beyond
 * KH5_MAX_CHUNK_BYTES: a few bytes of file can declare a chunk of gigabytes. */
static int check_chunks(hid_t d, size_t type_size, const char *what, const char *wname, mskx_err *e) {
  hid_t p = H5Dget_create_plist(d);
  if (p < 0) return err_set(e, MSKX_EFORMAT, "%s: weight '%.200s' has no readable storage properties", what, wname);
  int rc = MSKX_OK;
  if (H5Pget_layout(p) == H5D_CHUNKED) {
    hsize_t c[H5S_MAX_RANK];
    int n = H5Pget_chunk(p, H5S_MAX_RANK, c);
    uint64_t bytes = type_size;
    for (int i = 0; i < n && bytes <= KH5_MAX_CHUNK_BYTES; i++)
      bytes = c[i] && bytes > KH5_MAX_CHUNK_BYTES / c[i] ? KH5_MAX_CHUNK_BYTES + 1 : bytes * c[i];
    if (n < 0)
      rc = err_set(e, MSKX_EFORMAT, "%s: weight '%.200s' has an unreadable chunk layout", what, wname);
    else if (bytes > KH5_MAX_CHUNK_BYTES)
      rc = err_set(e, MSKX_ELIMIT, "%s: weight '%.200s' is stored in chunks of more than %llu MiB", what, wname,
                   (unsigned long long)(KH5_MAX_CHUNK_BYTES >> 20));
  }
  H5Pclose(p);
  return rc;
}

static int read_weight(hid_t g, const char *layer, const char *wname, const char *what, int64_t *total, htensor *out,
                       mskx_err *e) {
  if (!safe_path(wname))
    return err_set(e, MSKX_EFORMAT, "%s: layer '%.200s' has an invalid weight name '%.200s'", what, layer, wname);
  hid_t d = H5Dopen2(g, wname, H5P_DEFAULT);
  if (d < 0) return err_set(e, MSKX_EFORMAT, "%s: layer '%.200s': weight '%.200s' is missing", what, layer, wname);
  hid_t s = H5Dget_space(d), t = H5Dget_type(d);
  int rc = MSKX_OK, nd = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
  hsize_t dims[H5S_MAX_RANK];
  if (t < 0 || H5Tget_class(t) != H5T_FLOAT)
    rc = err_set(e, MSKX_EUNSUPPORTED, "%s: weight '%.200s' is not floating point", what, wname);
  else if (H5Tget_size(t) == 0 || H5Tget_size(t) > sizeof(double))
    rc = err_set(e, MSKX_EUNSUPPORTED, "%s: weight '%.200s' has a %zu-byte float type (at most 8 bytes)", what, wname,
                 H5Tget_size(t));
  else if (nd < 0 || nd > 4 || H5Sget_simple_extent_dims(s, dims, NULL) < 0)
    rc = err_set(e, MSKX_EFORMAT, "%s: weight '%.200s' has %d dimensions (at most 4)", what, wname, nd);
  if (!rc) rc = check_chunks(d, H5Tget_size(t), what, wname, e);
  int64_t numel = 1;
  for (int i = 0; !rc && i < nd; i++) {
    if (dims[i] > (hsize_t)KH5_MAX_NUMEL || (dims[i] && numel > KH5_MAX_NUMEL / (int64_t)dims[i]))
      rc = err_set(e, MSKX_ELIMIT, "%s: weight '%.200s' has more than %lld elements", what, wname,
                   (long long)KH5_MAX_NUMEL);
    else
      numel *= (int64_t)dims[i];
  }
  if (!rc && (*total += numel) > KH5_MAX_TOTAL)
    rc = err_set(e, MSKX_ELIMIT, "%s: more than %lld weight elements in all", what, (long long)KH5_MAX_TOTAL);
  if (!rc) {
    out->data = malloc((size_t)(numel ? numel : 1) * sizeof(float));
    size_t nl = strlen(layer) + strlen(wname) + 2;
    out->name = malloc(nl);
    if (!out->data || !out->name) rc = err_set(e, MSKX_ENOMEM, "out of memory");
    /* Keras's weight names usually repeat the layer ("conv1/conv/kernel:0");
     * the name kept is the weight name, which importers match on. */
    if (!rc) snprintf(out->name, nl, "%s", wname);
  }
  if (!rc && numel && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out->data) < 0)
    rc = err_set(e, MSKX_EFORMAT, "%s: weight '%.200s' cannot be read", what, wname);
  if (!rc) {
    out->ndim = nd;
    for (int i = 0; i < nd; i++) out->shape[i] = (int64_t)dims[i];
  } else {
    htensor_release(out);
  }
  if (t >= 0) H5Tclose(t);
  if (s >= 0) H5Sclose(s);
  H5Dclose(d);
  return rc;
}

static int add_tensor(st_file *f, int *cap, mskx_err *e) {
  if (f->n_tensors < *cap) return MSKX_OK;
  if (f->n_tensors >= KH5_MAX_WEIGHTS) return err_set(e, MSKX_ELIMIT, "more than %d weights", KH5_MAX_WEIGHTS);
  int nc = *cap ? *cap * 2 : 256;
  htensor *t = realloc(f->tensors, (size_t)nc * sizeof *t);
  if (!t) return err_set(e, MSKX_ENOMEM, "out of memory");
  memset(t + *cap, 0, (size_t)(nc - *cap) * sizeof *t);
  f->tensors = t;
  *cap = nc;
  return MSKX_OK;
}

static int read_layers(hid_t g, const char *what, st_file *f, mskx_err *e) {
  strs layers = {0};
  int found;
  int rc = read_names(g, "layer_names", what, &layers, KH5_MAX_LAYERS, &found, e);
  if (!rc && !found)
    rc = err_set(e, MSKX_EFORMAT, "%s: an HDF5 file but not Keras weights (no 'layer_names' attribute)", what);
  int cap = 0;
  int64_t total = 0;
  for (int i = 0; !rc && i < layers.n; i++) {
    const char *ln = layers.v[i];
    if (!safe_path(ln)) {
      rc = err_set(e, MSKX_EFORMAT, "%s: invalid layer name '%.200s'", what, ln);
      break;
    }
    hid_t lg = H5Gopen2(g, ln, H5P_DEFAULT);
    if (lg < 0) {
      rc = err_set(e, MSKX_EFORMAT, "%s: layer '%.200s' is listed but has no group", what, ln);
      break;
    }
    strs w = {0};
    rc = read_names(lg, "weight_names", what, &w, KH5_MAX_WEIGHTS, &found, e);
    if (!rc && !found)
      rc = err_set(e, MSKX_EFORMAT, "%s: layer '%.200s' has no 'weight_names' attribute", what, ln);
    for (int j = 0; !rc && j < w.n; j++) {
      rc = add_tensor(f, &cap, e);
      if (!rc) rc = read_weight(lg, ln, w.v[j], what, &total, &f->tensors[f->n_tensors], e);
      if (!rc) f->n_tensors++;
    }
    strs_free(&w);
    H5Gclose(lg);
  }
  strs_free(&layers);
  return rc;
}

static int read_config(hid_t file, const char *what, st_file *f, mskx_err *e) {
  if (H5Aexists(file, "model_config") <= 0) return MSKX_OK;
  strs cfg = {0};
  int rc = read_str_attr(file, "model_config", what, &cfg, 1, KH5_MAX_CONFIG, e);
  if (!rc && cfg.n == 1) {
    f->meta = calloc(1, sizeof *f->meta);
    if (!f->meta) rc = err_set(e, MSKX_ENOMEM, "out of memory");
    if (!rc) {
      f->meta[0].key = str_dup("model_config");
      f->meta[0].value = cfg.v[0];
      cfg.v[0] = NULL;
      f->n_meta = 1;
      if (!f->meta[0].key) rc = err_set(e, MSKX_ENOMEM, "out of memory");
    }
  }
  strs_free(&cfg);
  return rc;
}

static int read_file(hid_t file, const char *what, st_file **out, mskx_err *e) {
  st_file *f = calloc(1, sizeof *f);
  if (!f) return err_set(e, MSKX_ENOMEM, "out of memory");
  int rc = read_config(file, what, f, e);
  hid_t g = -1;
  if (!rc) {
    /* model.save nests the weights one group down; save_weights does not. */
    g = H5Lexists(file, "model_weights", H5P_DEFAULT) > 0 ? H5Gopen2(file, "model_weights", H5P_DEFAULT)
                                                          : H5Gopen2(file, "/", H5P_DEFAULT);
    if (g < 0) rc = err_set(e, MSKX_EFORMAT, "%s: the weights group cannot be opened", what);
  }
  if (!rc) rc = read_layers(g, what, f, e);
  if (!rc && !f->n_tensors) rc = err_set(e, MSKX_EFORMAT, "%s: the Keras file holds no weights", what);
  if (g >= 0) H5Gclose(g);
  if (rc) {
    st_free(f);
    return rc;
  }
  *out = f;
  return MSKX_OK;
}

/* libhdf5's automatic error printing, off between begin and end. */
typedef struct h5_quiet {
  H5E_auto2_t fn;
  void *data;
} h5_quiet;

static h5_quiet quiet_begin(void) {
  h5_quiet q = {0};
  H5Eget_auto2(H5E_DEFAULT, &q.fn, &q.data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  return q;
}

static void quiet_end(h5_quiet q) { H5Eset_auto2(H5E_DEFAULT, q.fn, q.data); }

static int open_and_read(hid_t file, const char *what, st_file **out, mskx_err *e) {
  if (file < 0) return err_set(e, MSKX_EFORMAT, "%s: not a readable HDF5 file", what);
  int rc = read_file(file, what, out, e);
  H5Fclose(file);
  return rc;
}

/* File access with H5F_CLOSE_STRONG: closing the file also closes whatever
 * a failed read left open (libhdf5 can keep objects of a corrupt file). */
static hid_t strong_fapl(void) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl >= 0 && H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
    H5Pclose(fapl);
    return -1;
  }
  return fapl;
}

int kh5_read(const char *path, st_file **out, mskx_err *e) {
  *out = NULL;
  FILE *fp = fopen(path, "rb");
  if (!fp) return err_set(e, MSKX_EIO, "%s: cannot open", path);
  fclose(fp);
  h5_quiet q = quiet_begin();
  hid_t fapl = strong_fapl(), file = fapl >= 0 ? H5Fopen(path, H5F_ACC_RDONLY, fapl) : -1;
  if (fapl >= 0) H5Pclose(fapl);
  int rc = open_and_read(file, path, out, e);
  quiet_end(q);
  return rc;
}

int kh5_read_mem(const unsigned char *buf, size_t len, const char *what, st_file **out, mskx_err *e) {
  *out = NULL;
  if (!kh5_sniff(buf, len)) return err_set(e, MSKX_EFORMAT, "%s: not an HDF5 file", what);
  h5_quiet q = quiet_begin();
  /* The core driver opens a copy of the image in memory; nothing touches disk. */
  hid_t fapl = strong_fapl(), file = -1;
  if (fapl >= 0 && H5Pset_fapl_core(fapl, 1 << 20, 0) >= 0 && H5Pset_file_image(fapl, (void *)buf, len) >= 0)
    file = H5Fopen(what, H5F_ACC_RDONLY, fapl);
  if (fapl >= 0) H5Pclose(fapl);
  int rc = open_and_read(file, what, out, e);
  quiet_end(q);
  return rc;
}
