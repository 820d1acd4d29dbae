/* safetensors reader and writer (see safetensors.h). The JSON header is parsed
 * with cJSON and every shape and offset is checked before any data is touched. */
#include "io/safetensors.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian and is copied as is: a little-endian host is required"
#endif

/* The reference implementation refuses headers above 100 MB (MAX_HEADER_SIZE). */
#define ST_MAX_HEADER ((uint64_t)100000000)
/* JSON numbers are doubles: integers above 2^53 are not exact. */
#define ST_MAX_JSON_INT 9007199254740992.0
/* Tensor names in messages are cut to this many bytes (hostile names can be huge). */
#define ST_NAME_SHOWN 120

/* I64 is read (as float) because torchvision state_dicts carry integer
 * "num_batches_tracked" counters; model loading ignores those tensors. */
typedef elem_dtype st_dtype;

static const struct {
  const char *name;
  st_dtype dt;
  size_t size;
} st_dtypes[] = {{"F32", EL_F32, 4}, {"F16", EL_F16, 2}, {"BF16", EL_BF16, 2}, {"F64", EL_F64, 8}, {"I64", EL_I64, 8}, {"I8", EL_I8, 1}};

/* One validated header entry, before any allocation. */
typedef struct st_entry {
  const char *name;
  int dtype;
  int ndim;
  int64_t shape[TENSOR_MAX_DIMS];
  uint64_t numel, begin, end;
} st_entry;

/* A printable, one-line, bounded rendering of a name for messages. */
static const char *shown(char *buf, size_t n, const char *s) {
  size_t i = 0, cap = n - 4 < ST_NAME_SHOWN ? n - 4 : ST_NAME_SHOWN;
  for (; s[i] && i < cap; i++) buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
  if (s[i]) {
    memcpy(buf + i, "...", 3);
    i += 3;
  }
  buf[i] = 0;
  return buf;
}

/* A JSON number that is a non-negative integer exactly representable. */
static int json_uint(const cJSON *v, uint64_t *out) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (!(d >= 0) || d > ST_MAX_JSON_INT || d != floor(d)) return 0;
  *out = (uint64_t)d;
  return 1;
}

static int parse_shape(const cJSON *shape, const char *path, const char *nm, st_entry *en, mskx_err *e) {
  if (!shape) return err_set(e, MSKX_EFORMAT, "%s: tensor '%s': missing \"shape\"", path, nm);
  if (!cJSON_IsArray(shape)) return err_set(e, MSKX_EFORMAT, "%s: tensor '%s': \"shape\" is not an array", path, nm);
  int nd = cJSON_GetArraySize(shape);
  if (nd > TENSOR_MAX_DIMS)
    return err_set(e, MSKX_EUNSUPPORTED, "%s: tensor '%s': %d dimensions (at most %d supported)", path, nm, nd,
                   TENSOR_MAX_DIMS);
  uint64_t numel = 1;
  int i = 0;
  const cJSON *d;
  cJSON_ArrayForEach(d, shape) {
    uint64_t v;
    if (cJSON_IsNumber(d) && d->valuedouble < 0)
      return err_set(e, MSKX_EFORMAT, "%s: tensor '%s': shape entry %d is negative (%g)", path, nm, i, d->valuedouble);
    if (!json_uint(d, &v))
      return err_set(e, MSKX_EFORMAT, "%s: tensor '%s': shape entry %d is not an integer", path, nm, i);
    if (v && numel > (uint64_t)INT64_MAX / v)
      return err_set(e, MSKX_EFORMAT, "%s: tensor '%s': shape element count overflows", path, nm);
    numel *= v;
    en->shape[i++] = (int64_t)v;
  }
  en->ndim = nd;
  en->numel = numel;
  return MSKX_OK;
}

static int parse_offsets(const cJSON *off, const char *path, const char *nm, st_entry *en, uint64_t data_len,
                         mskx_err *e) {
  if (!off) return err_set(e, MSKX_EFORMAT, "%s: tensor '%s': missing \"data_offsets\"", path, nm);
  if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !json_uint(off->child, &en->begin) ||
      !json_uint(off->child->next, &en->end))
    return err_set(e, MSKX_EFORMAT, "%s: tensor '%s': \"data_offsets\" is not a pair of non-negative integers",
                   path, nm);
  if (en->begin > en->end)
    return err_set(e, MSKX_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", path, nm,
                   (unsigned long long)en->begin, (unsigned long long)en->end);
  if (en->end > data_len)
    return err_set(e, MSKX_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] reach past the %llu-byte data section",
                   path, nm, (unsigned long long)en->begin, (unsigned long long)en->end,
                   (unsigned long long)data_len);
  size_t esize = st_dtypes[en->dtype].size;
  if (en->numel > UINT64_MAX / esize || en->end - en->begin != en->numel * esize) {
    char sb[256];
    if (en->numel > UINT64_MAX / esize)
      return err_set(e, MSKX_EFORMAT, "%s: tensor '%s': shape %s %s overflows the byte count", path, nm,
                     shape_str(sb, sizeof sb, en->ndim, en->shape), st_dtypes[en->dtype].name);
    return err_set(e, MSKX_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but shape %s %s needs %llu",
                   path, nm, (unsigned long long)en->begin, (unsigned long long)en->end,
                   (unsigned long long)(en->end - en->begin), shape_str(sb, sizeof sb, en->ndim, en->shape),
                   st_dtypes[en->dtype].name, (unsigned long long)(en->numel * esize));
  }
  return MSKX_OK;
}

static int parse_entry(const cJSON *item, const char *path, uint64_t data_len, st_entry *en, mskx_err *e) {
  char nb[ST_NAME_SHOWN + 8];
  const char *nm = shown(nb, sizeof nb, item->string);
  en->name = item->string;
  if (!cJSON_IsObject(item)) return err_set(e, MSKX_EFORMAT, "%s: tensor '%s': entry is not an object", path, nm);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
  if (!dt) return err_set(e, MSKX_EFORMAT, "%s: tensor '%s': missing \"dtype\"", path, nm);
  if (!cJSON_IsString(dt)) return err_set(e, MSKX_EFORMAT, "%s: tensor '%s': \"dtype\" is not a string", path, nm);
  en->dtype = -1;
  for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
    if (strcmp(dt->valuestring, st_dtypes[i].name) == 0) en->dtype = (int)i;
  if (en->dtype < 0) {
    char db[ST_NAME_SHOWN + 8];
    return err_set(e, MSKX_EUNSUPPORTED, "%s: tensor '%s': dtype '%s' not supported (need F32, F16, BF16, F64, I64 or I8)",
                   path, nm, shown(db, sizeof db, dt->valuestring));
  }
  int rc = parse_shape(cJSON_GetObjectItemCaseSensitive(item, "shape"), path, nm, en, e);
  if (rc) return rc;
  return parse_offsets(cJSON_GetObjectItemCaseSensitive(item, "data_offsets"), path, nm, en, data_len, e);
}

static int cmp_str_ptr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts names in place and returns one that occurs twice, or NULL; sorting
 * keeps hostile headers with millions of entries from going quadratic. */
static const char *find_dup(const char **names, int n) {
  if (n < 2) return NULL;
  qsort(names, (size_t)n, sizeof *names, cmp_str_ptr);
  for (int i = 1; i < n; i++)
    if (strcmp(names[i - 1], names[i]) == 0) return names[i];
  return NULL;
}

static int parse_metadata(const cJSON *md, const char *path, st_file *f, mskx_err *e) {
  if (!cJSON_IsObject(md)) return err_set(e, MSKX_EFORMAT, "%s: \"__metadata__\" is not an object", path);
  int n = cJSON_GetArraySize(md);
  f->meta = calloc(n > 0 ? (size_t)n : 1, sizeof *f->meta);
  if (!f->meta) return err_set(e, MSKX_ENOMEM, "%s: out of memory for metadata", path);
  char kb[ST_NAME_SHOWN + 8];
  const cJSON *it;
  cJSON_ArrayForEach(it, md) {
    if (!cJSON_IsString(it))
      return err_set(e, MSKX_EFORMAT, "%s: metadata '%s': value is not a string", path,
                     shown(kb, sizeof kb, it->string));
    st_meta *m = &f->meta[f->n_meta];
    m->key = str_dup(it->string);
    m->value = str_dup(it->valuestring);
    if (!m->key || !m->value) {
      free(m->key);
      free(m->value);
      return err_set(e, MSKX_ENOMEM, "%s: out of memory for metadata", path);
    }
    f->n_meta++;
  }
  const char **keys = malloc((size_t)(n > 0 ? n : 1) * sizeof *keys);
  if (!keys) return err_set(e, MSKX_ENOMEM, "%s: out of memory for metadata", path);
  for (int i = 0; i < f->n_meta; i++) keys[i] = f->meta[i].key;
  const char *dup = find_dup(keys, f->n_meta);
  int rc = dup ? err_set(e, MSKX_EFORMAT, "%s: metadata '%s': duplicate key", path, shown(kb, sizeof kb, dup)) : 0;
  free(keys);
  return rc;
}

static int cmp_entry_begin(const void *a, const void *b) {
  const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
  return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Rejects duplicate names and overlapping data ranges: overlap would let a
 * small file make us allocate far more than its size. */
static int check_entries(st_entry *ents, int n, const char *path, mskx_err *e) {
  if (n < 2) return MSKX_OK;
  st_entry **p = malloc((size_t)n * sizeof *p);
  const char **names = malloc((size_t)n * sizeof *names);
  if (!p || !names) {
    free(p);
    free(names);
    return err_set(e, MSKX_ENOMEM, "%s: out of memory", path);
  }
  for (int i = 0; i < n; i++) {
    p[i] = &ents[i];
    names[i] = ents[i].name;
  }
  char b1[ST_NAME_SHOWN + 8], b2[ST_NAME_SHOWN + 8];
  const char *dup = find_dup(names, n);
  int rc = dup ? err_set(e, MSKX_EFORMAT, "%s: tensor '%s': duplicate name", path, shown(b1, sizeof b1, dup)) : 0;
  free(names);
  qsort(p, (size_t)n, sizeof *p, cmp_entry_begin);
  const st_entry *prev = NULL;
  for (int i = 0; i < n && !rc; i++) {
    if (p[i]->begin == p[i]->end) continue;
    if (prev && p[i]->begin < prev->end)
      rc = err_set(e, MSKX_EFORMAT, "%s: tensors '%s' and '%s' overlap in the data section", path,
                   shown(b1, sizeof b1, prev->name), shown(b2, sizeof b2, p[i]->name));
    prev = p[i];
  }
  free(p);
  return rc;
}

/* Validates the whole header into ents (names point into root). */
static int parse_header(const cJSON *root, const char *path, uint64_t data_len, st_file *f, st_entry **ents_out,
                        int *n_out, mskx_err *e) {
  if (!cJSON_IsObject(root)) return err_set(e, MSKX_EFORMAT, "%s: header is not a JSON object", path);
  int n = cJSON_GetArraySize(root), count = 0, seen_meta = 0, rc = MSKX_OK;
  st_entry *ents = calloc(n > 0 ? (size_t)n : 1, sizeof *ents);
  if (!ents) return err_set(e, MSKX_ENOMEM, "%s: out of memory for %d header entries", path, n);
  const cJSON *it;
  cJSON_ArrayForEach(it, root) {
    if (strcmp(it->string, "__metadata__") == 0) {
      rc = seen_meta++ ? err_set(e, MSKX_EFORMAT, "%s: duplicate \"__metadata__\"", path)
                       : parse_metadata(it, path, f, e);
    } else {
      rc = parse_entry(it, path, data_len, &ents[count++], e);
    }
    if (rc) break;
  }
  if (!rc) rc = check_entries(ents, count, path, e);
  if (rc) {
    free(ents);
    return rc;
  }
  *ents_out = ents;
  *n_out = count;
  return MSKX_OK;
}

static int fill_tensors(st_file *f, const st_entry *ents, int n, const unsigned char *data, const char *path,
                        mskx_err *e) {
  f->tensors = calloc(n > 0 ? (size_t)n : 1, sizeof *f->tensors);
  if (!f->tensors) return err_set(e, MSKX_ENOMEM, "%s: out of memory for %d tensors", path, n);
  for (int i = 0; i < n; i++) {
    htensor *t = &f->tensors[i];
    f->n_tensors = i + 1;
    t->name = str_dup(ents[i].name);
    /* numel * 4 cannot overflow: numel * dtype size fits in the file. */
    t->data = malloc(ents[i].numel ? (size_t)ents[i].numel * 4 : 1);
    if (!t->name || !t->data) {
      char nb[ST_NAME_SHOWN + 8];
      return err_set(e, MSKX_ENOMEM, "%s: tensor '%s': out of memory for %llu floats", path,
                     shown(nb, sizeof nb, ents[i].name), (unsigned long long)ents[i].numel);
    }
    t->ndim = ents[i].ndim;
    memcpy(t->shape, ents[i].shape, sizeof t->shape);
    elem_convert(t->data, data + ents[i].begin, (size_t)ents[i].numel, st_dtypes[ents[i].dtype].dt);
    /* Rewriting the file (st_write of these tensors) keeps int8 tensors int8. */
    t->file_dtype = st_dtypes[ents[i].dtype].dt == EL_I8 ? EL_I8 : EL_F32;
  }
  return MSKX_OK;
}

int st_read_mem(const unsigned char *buf, size_t len, const char *path, st_file **out, mskx_err *e) {
  *out = NULL;
  if (len < 8)
    return err_set(e, MSKX_EFORMAT, "%s: %zu bytes, too short for the 8-byte safetensors header length", path, len);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
  if (hlen > ST_MAX_HEADER)
    return err_set(e, MSKX_EFORMAT, "%s: header length %llu is above the %llu-byte limit", path,
                   (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
  if (hlen > len - 8)
    return err_set(e, MSKX_EFORMAT, "%s: header length %llu runs past the end of the %zu-byte file", path,
                   (unsigned long long)hlen, len);
  if (memchr(buf + 8, 0, (size_t)hlen))
    return err_set(e, MSKX_EFORMAT, "%s: header contains a NUL byte", path);
  /* cJSON wants a NUL-terminated copy to stop cleanly at the header's end. */
  char *hdr = malloc((size_t)hlen + 1);
  if (!hdr) return err_set(e, MSKX_ENOMEM, "%s: out of memory for a %llu-byte header", path, (unsigned long long)hlen);
  memcpy(hdr, buf + 8, (size_t)hlen);
  hdr[hlen] = 0;
  const char *stop = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen + 1, &stop, 1);
  if (!root) {
    size_t at = stop && stop >= hdr ? (size_t)(stop - hdr) : 0;
    free(hdr);
    return err_set(e, MSKX_EFORMAT, "%s: header is not valid JSON (error near byte %zu of %llu)", path, at,
                   (unsigned long long)hlen);
  }
  st_file *f = calloc(1, sizeof *f);
  st_entry *ents = NULL;
  int n = 0, rc = f ? MSKX_OK : err_set(e, MSKX_ENOMEM, "%s: out of memory", path);
  if (!rc) rc = parse_header(root, path, (uint64_t)(len - 8 - hlen), f, &ents, &n, e);
  if (!rc) rc = fill_tensors(f, ents, n, buf + 8 + hlen, path, e);
  free(ents);
  cJSON_Delete(root);
  free(hdr);
  if (rc) {
    st_free(f);
    return rc;
  }
  *out = f;
  return MSKX_OK;
}

int st_read(const char *path, st_file **out, mskx_err *e) {
  unsigned char *buf;
  size_t len;
  *out = NULL;
  int rc = file_read_all(path, 0, &buf, &len, e);
  if (rc) return rc;
  rc = st_read_mem(buf, len, path, out, e);
  free(buf);
  return rc;
}

void st_free(st_file *f) {
  if (!f) return;
  for (int i = 0; i < f->n_tensors; i++) htensor_release(&f->tensors[i]);
  for (int i = 0; i < f->n_meta; i++) {
    free(f->meta[i].key);
    free(f->meta[i].value);
  }
  free(f->tensors);
  free(f->meta);
  free(f);
}

const htensor *st_find(const st_file *f, const char *name) {
  for (int i = 0; i < f->n_tensors; i++)
    if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
  return NULL;
}

const char *st_meta_get(const st_file *f, const char *key) {
  for (int i = 0; i < f->n_meta; i++)
    if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
  return NULL;
}

/* ---- writing ---- */

/* Checks names/shapes and fills bytes[i]; duplicates are found by sorting. */
static int write_check(const char *path, const tensor_ref *ts, int n, const st_meta *meta, int n_meta, size_t *bytes,
                       mskx_err *e) {
  char nb[ST_NAME_SHOWN + 8];
  for (int i = 0; i < n; i++) {
    const tensor_ref *t = &ts[i];
    if (!t->name || strcmp(t->name, "__metadata__") == 0)
      return err_set(e, MSKX_EINVAL, "%s: tensor %d has no usable name", path, i);
    const char *nm = shown(nb, sizeof nb, t->name);
    if (t->ndim < 0 || t->ndim > TENSOR_MAX_DIMS)
      return err_set(e, MSKX_EINVAL, "%s: tensor '%s': ndim %d out of range", path, nm, t->ndim);
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++)
      if (t->shape[d] < 0 || !size_mul(numel, (size_t)t->shape[d], &numel))
        return err_set(e, MSKX_EINVAL, "%s: tensor '%s': invalid shape", path, nm);
    if (t->file_dtype != EL_F32 && t->file_dtype != EL_I8)
      return err_set(e, MSKX_EINVAL, "%s: tensor '%s': can only be written as F32 or I8", path, nm);
    if (!size_mul(numel, t->file_dtype == EL_I8 ? 1 : 4, &bytes[i]) || (numel && !t->data))
      return err_set(e, MSKX_EINVAL, "%s: tensor '%s': no data or size overflow", path, nm);
    for (size_t k = 0; t->file_dtype == EL_I8 && k < numel; k++)
      if (!(t->data[k] >= -128 && t->data[k] <= 127 && t->data[k] == (float)(int)t->data[k]))
        return err_set(e, MSKX_EINVAL, "%s: tensor '%s': value %g at %zu is not an 8-bit integer", path, nm,
                       (double)t->data[k], k);
  }
  for (int i = 0; i < n_meta; i++)
    if (!meta[i].key || !meta[i].value) return err_set(e, MSKX_EINVAL, "%s: metadata entry %d is NULL", path, i);
  const char **names = malloc((size_t)(n + n_meta + 1) * sizeof *names);
  if (!names) return err_set(e, MSKX_ENOMEM, "%s: out of memory", path);
  int rc = MSKX_OK;
  for (int pass = 0; pass < 2 && !rc; pass++) {
    int m = pass ? n_meta : n;
    for (int i = 0; i < m; i++) names[i] = pass ? meta[i].key : ts[i].name;
    const char *dup = find_dup(names, m);
    if (dup)
      rc = err_set(e, MSKX_EINVAL, "%s: duplicate %s '%s'", path, pass ? "metadata key" : "tensor name",
                   shown(nb, sizeof nb, dup));
  }
  free(names);
  return rc;
}

/* The header JSON, padded with spaces so the data starts 8-byte aligned, as
 * the reference writer does. */
static char *build_header(const tensor_ref *ts, int n, const st_meta *meta, int n_meta, const size_t *bytes,
                          size_t *hlen) {
  cJSON *root = cJSON_CreateObject(), *md = NULL;
  int ok = root != NULL;
  if (ok && n_meta > 0) ok = (md = cJSON_AddObjectToObject(root, "__metadata__")) != NULL;
  for (int i = 0; ok && i < n_meta; i++) ok = cJSON_AddStringToObject(md, meta[i].key, meta[i].value) != NULL;
  size_t off = 0;
  for (int i = 0; ok && i < n; i++) {
    cJSON *t = cJSON_AddObjectToObject(root, ts[i].name), *sh, *of;
    ok = t && cJSON_AddStringToObject(t, "dtype", ts[i].file_dtype == EL_I8 ? "I8" : "F32") && (sh = cJSON_AddArrayToObject(t, "shape")) &&
         (of = cJSON_AddArrayToObject(t, "data_offsets"));
    for (int d = 0; ok && d < ts[i].ndim; d++) ok = cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)ts[i].shape[d]));
    if (ok) ok = cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
    off += bytes[i];
    if (ok) ok = cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
  }
  char *js = ok ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  if (!js) return NULL;
  size_t len = strlen(js), padded = (len + 7) / 8 * 8;
  char *out = malloc(padded + 1);
  if (out) {
    memcpy(out, js, len);
    memset(out + len, ' ', padded - len);
    out[padded] = 0;
    *hlen = padded;
  }
  cJSON_free(js);
  return out;
}

/* A tensor's bytes: its floats as they are, or (checked by write_check)
 * converted to int8 a chunk at a time. */
static int write_data(atomic_file *af, const tensor_ref *t, size_t bytes, mskx_err *e) {
  if (t->file_dtype != EL_I8) return atomic_file_write(af, t->data, bytes, e);
  int8_t chunk[4096];
  int rc = MSKX_OK;
  for (size_t k = 0; k < bytes && !rc; k += sizeof chunk) {
    size_t m = bytes - k < sizeof chunk ? bytes - k : sizeof chunk;
    for (size_t j = 0; j < m; j++) chunk[j] = (int8_t)t->data[k + j];
    rc = atomic_file_write(af, chunk, m, e);
  }
  return rc;
}

int st_write(const char *path, const tensor_ref *tensors, int n_tensors, const st_meta *meta, int n_meta,
             mskx_err *e) {
  if (n_tensors < 0 || n_meta < 0 || (n_tensors && !tensors) || (n_meta && !meta))
    return err_set(e, MSKX_EINVAL, "%s: invalid tensor or metadata list", path);
  size_t *bytes = calloc(n_tensors > 0 ? (size_t)n_tensors : 1, sizeof *bytes);
  if (!bytes) return err_set(e, MSKX_ENOMEM, "%s: out of memory", path);
  int rc = write_check(path, tensors, n_tensors, meta, n_meta, bytes, e);
  size_t hlen = 0;
  char *hdr = rc ? NULL : build_header(tensors, n_tensors, meta, n_meta, bytes, &hlen);
  if (!rc && !hdr) rc = err_set(e, MSKX_ENOMEM, "%s: out of memory building the header", path);
  atomic_file af;
  if (!rc) rc = atomic_file_open(&af, path, e);
  if (!rc) {
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    rc = atomic_file_write(&af, lenb, 8, e);
    if (!rc) rc = atomic_file_write(&af, hdr, hlen, e);
    for (int i = 0; i < n_tensors && !rc; i++) rc = write_data(&af, &tensors[i], bytes[i], e);
    if (rc)
      atomic_file_abort(&af);
    else
      rc = atomic_file_commit(&af, e);
  }
  free(hdr);
  free(bytes);
  return rc;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp((*(const htensor *const *)a)->name, (*(const htensor *const *)b)->name);
}

int st_check_unique(const st_file *f, const char *what, mskx_err *e) {
  const htensor **p = malloc((size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *p);
  if (!p) return err_set(e, MSKX_ENOMEM, "out of memory");
  for (int i = 0; i < f->n_tensors; i++) p[i] = &f->tensors[i];
  qsort(p, (size_t)f->n_tensors, sizeof *p, cmp_names);
  int rc = MSKX_OK;
  for (int i = 1; i < f->n_tensors && !rc; i++)
    if (!strcmp(p[i - 1]->name, p[i]->name))
      rc = err_set(e, MSKX_EFORMAT, "%s: tensor '%.200s' appears twice", what, p[i]->name);
  free(p);
  return rc;
}
