/* safetensors tests: a file written byte by byte in Python (F32/F16/BF16/F64,
 * metadata) reads back as NumPy/PyTorch convert it, files we write pass a
 * Python reader, and hostile headers fail with messages naming file and field. */
#include <stdint.h>
#include <unistd.h>
#include "core/error.h"
#include "core/rng.h"
#include "core/util.h"
#include "io/safetensors.h"
#include "test.h"

#define IO_FIXTURE_TAG "io_st"
#include "io/io_fixtures.h"

/* A file with header length hlen_field, the given header text and n zero data bytes. */
static const char *st_raw_len(const char *name, uint64_t hlen_field, const char *hdr, size_t n) {
  size_t hl = strlen(hdr);
  unsigned char *buf = calloc(8 + hl + n + 1, 1);
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hlen_field >> (8 * i));
  memcpy(buf + 8, hdr, hl);
  const char *p = fx(name);
  write_bytes(p, buf, 8 + hl + n);
  free(buf);
  return p;
}

static const char *st_raw(const char *name, const char *hdr, size_t n) { return st_raw_len(name, strlen(hdr), hdr, n); }

#define EXPECT_FAIL(path, want_code, what)                                                                \
  do {                                                                                                    \
    const char *p_ = (path);                                                                              \
    st_file *f_ = (st_file *)1;                                                                           \
    mskx_err e_ = {0};                                                                                    \
    int rc_ = st_read(p_, &f_, &e_);                                                                      \
    CHECKF(rc_ != 0, "%s: read succeeded", p_);                                                           \
    CHECKF(e_.code == rc_ && ((want_code) == 0 || rc_ == (want_code)), "code %d, want %d: %s", rc_,       \
           (want_code), e_.msg);                                                                          \
    CHECKF(strstr(e_.msg, p_) && strstr(e_.msg, (what)), "message '%s' lacks path or '%s'", e_.msg, (what)); \
    CHECKF(!strchr(e_.msg, '\n'), "message is not one line: %s", e_.msg);                              \
    CHECK(f_ == NULL);                                                                                    \
  } while (0)

/* Same bits, or both NaN (a NaN's payload is not what these tests are about). */
static int same_float(float a, float b) {
  uint32_t x, y;
  memcpy(&x, &a, 4);
  memcpy(&y, &b, 4);
  return x == y || (a != a && b != b);
}

TEST(python_written_file_reads_like_numpy_and_torch) {
  CHECK(fixtures());
  st_file *f;
  mskx_err e = {0};
  CHECK_OK(st_read(fx("ref.safetensors"), &f, &e), &e);
  FILE *m = fopen(fx("st_manifest.txt"), "r");
  CHECK(m);
  char name[256];
  int ndim, i = 0;
  while (fscanf(m, "%255s %d", name, &ndim) == 2) {
    CHECKF(i < f->n_tensors, "only %d tensors read", f->n_tensors);
    const htensor *t = &f->tensors[i];
    CHECKF(strcmp(t->name, name) == 0, "tensor %d is '%s', want '%s' (header order)", i, t->name, name);
    CHECK(st_find(f, name) == t);
    CHECK_EQ_INT(t->ndim, ndim);
    for (int d = 0; d < ndim; d++) {
      long long s;
      CHECK(fscanf(m, "%lld", &s) == 1);
      CHECK_EQ_INT(t->shape[d], s);
    }
    char p[64];
    snprintf(p, sizeof p, "st_%d.f32", i);
    unsigned char *want;
    size_t wl;
    CHECK_OK(file_read_all(fx(p), 0, &want, &wl, &e), &e);
    CHECK_EQ_INT(wl, htensor_numel(t) * 4);
    for (size_t k = 0; k < wl / 4; k++) {
      float w;
      memcpy(&w, want + 4 * k, 4);
      CHECKF(same_float(t->data[k], w), "%s[%zu]: %.9g, reference %.9g", name, k, t->data[k], w);
    }
    free(want);
    i++;
  }
  fclose(m);
  CHECK_EQ_INT(i, 6);
  CHECK_EQ_INT(f->n_tensors, 6);
  CHECK_EQ_INT(f->n_meta, 2);
  CHECK(st_meta_get(f, "format") && strcmp(st_meta_get(f, "format"), "pt") == 0);
  CHECK(st_meta_get(f, "note") && strcmp(st_meta_get(f, "note"), "caf\xc3\xa9 \"quoted\"") == 0);
  CHECK(st_meta_get(f, "absent") == NULL && st_find(f, "absent") == NULL);
  st_free(f);
}

TEST(written_file_passes_python_reader) {
  static const char *names[] = {"features.conv0.weight", "b", "scalar", "empty", "classifier.bias"};
  static const int ndims[] = {4, 1, 0, 2, 1};
  static const int64_t shapes[][4] = {{4, 3, 2, 2}, {5}, {0}, {0, 7}, {1}};
  tensor_ref ts[5];
  float *bufs[5];
  memset(ts, 0, sizeof ts);
  rng r = rng_for(3, 0, 0);
  FILE *m = fopen(fx("c_st_manifest.txt"), "w");
  CHECK(m);
  st_meta meta[2] = {{"arch", "densenet169"}, {"note", "tab-free \"q\" caf\xc3\xa9"}};
  for (int i = 0; i < 2; i++) fprintf(m, "meta\t%s\t%s\n", meta[i].key, meta[i].value);
  for (int i = 0; i < 5; i++) {
    ts[i].name = names[i];
    ts[i].ndim = ndims[i];
    memcpy(ts[i].shape, shapes[i], sizeof shapes[i]);
    int64_t n = tensor_ref_numel(&ts[i]);
    ts[i].data = bufs[i] = malloc((size_t)n * 4 + 4);
    for (int64_t k = 0; k < n; k++) bufs[i][k] = (float)rng_normal(&r);
    char raw[32];
    snprintf(raw, sizeof raw, "c_st_%d.raw", i);
    CHECK(write_bytes(fx(raw), ts[i].data, (size_t)n * 4));
    fprintf(m, "tensor\t%s\t", names[i]);
    for (int d = 0; d < ndims[i]; d++) fprintf(m, "%s%lld", d ? " " : "", (long long)shapes[i][d]);
    fprintf(m, "\t%s\n", raw);
  }
  fclose(m);
  mskx_err e = {0};
  int rc = st_write(fx("c_out.safetensors"), ts, 5, meta, 2, &e);
  st_file *f = NULL;
  if (!rc) rc = st_read(fx("c_out.safetensors"), &f, &e);
  int same = f && f->n_tensors == 5;
  for (int i = 0; same && i < 5; i++)
    same = strcmp(f->tensors[i].name, names[i]) == 0 &&
           memcmp(f->tensors[i].data, ts[i].data, (size_t)tensor_ref_numel(&ts[i]) * 4) == 0;
  same = same && strcmp(st_meta_get(f, "arch"), "densenet169") == 0;
  st_free(f);
  for (int i = 0; i < 5; i++) free(bufs[i]);
  CHECKF(rc == 0, "%s", e.msg);
  CHECKF(same, "our own reader disagrees with what we wrote");
  CHECKF(run_tool("check_st") == 0, "the Python reader rejected c_out.safetensors (see output above)");
}

TEST(i8_tensors_round_trip) {
  float q[5] = {-128, -1, 0, 7, 127}, f[2] = {0.5f, -2};
  tensor_ref ts[2] = {{.name = "q", .ndim = 1, .shape = {5}, .data = q, .file_dtype = EL_I8},
                   {.name = "f", .ndim = 1, .shape = {2}, .data = f}};
  mskx_err e = {0};
  CHECK_OK(st_write(fx("i8.safetensors"), ts, 2, NULL, 0, &e), &e);
  st_file *r = NULL;
  CHECK_OK(st_read(fx("i8.safetensors"), &r, &e), &e);
  const htensor *a = st_find(r, "q"), *b = st_find(r, "f");
  CHECK(a && b && a->file_dtype == EL_I8 && b->file_dtype == EL_F32);
  CHECK(!memcmp(a->data, q, sizeof q) && !memcmp(b->data, f, sizeof f));
  st_free(r);
  q[2] = 0.5f;
  CHECK(st_write(fx("i8b.safetensors"), ts, 1, NULL, 0, &e) == MSKX_EINVAL && strstr(e.msg, "not an 8-bit integer"));
  q[2] = 128;
  CHECK(st_write(fx("i8b.safetensors"), ts, 1, NULL, 0, &e) == MSKX_EINVAL && strstr(e.msg, "'q'"));
}

TEST(write_rejects_bad_input) {
  float v[2] = {1, 2};
  tensor_ref ts[2] = {{.name = "a", .ndim = 1, .shape = {2}, .data = v},
                      {.name = "a", .ndim = 1, .shape = {2}, .data = v}};
  mskx_err e = {0};
  CHECK(st_write(fx("w.safetensors"), ts, 2, NULL, 0, &e) == MSKX_EINVAL && strstr(e.msg, "duplicate tensor name 'a'"));
  ts[1].name = "__metadata__";
  CHECK(st_write(fx("w.safetensors"), ts, 2, NULL, 0, &e) == MSKX_EINVAL);
  ts[1].name = "b";
  ts[1].shape[0] = -1;
  CHECK(st_write(fx("w.safetensors"), ts, 2, NULL, 0, &e) == MSKX_EINVAL && strstr(e.msg, "'b'"));
  ts[1].shape[0] = 2;
  ts[1].data = NULL;
  CHECK(st_write(fx("w.safetensors"), ts, 2, NULL, 0, &e) == MSKX_EINVAL);
  ts[1].data = v;
  st_meta md[2] = {{"k", "1"}, {"k", "2"}};
  CHECK(st_write(fx("w.safetensors"), ts, 2, md, 2, &e) == MSKX_EINVAL && strstr(e.msg, "metadata key 'k'"));
  CHECK(!path_exists(fx("w.safetensors")));
  CHECK_OK(st_write(fx("w.safetensors"), ts, 2, md, 1, &e), &e);
}

TEST(missing_file) { EXPECT_FAIL(fx("nope.safetensors"), MSKX_EIO, "cannot open"); }

TEST(empty_file) {
  CHECK(write_bytes(fx("empty.safetensors"), "", 0));
  EXPECT_FAIL(fx("empty.safetensors"), MSKX_EFORMAT, "0 bytes, too short");
}

TEST(shorter_than_8_bytes) {
  CHECK(write_bytes(fx("short.safetensors"), "\x02\0\0\0\0", 5));
  EXPECT_FAIL(fx("short.safetensors"), MSKX_EFORMAT, "5 bytes, too short");
}

TEST(header_length_beyond_file) {
  EXPECT_FAIL(st_raw_len("hlen.safetensors", 1000, "{}", 10), MSKX_EFORMAT, "header length 1000 runs past the end");
}

TEST(header_length_huge) {
  EXPECT_FAIL(st_raw_len("huge.safetensors", (uint64_t)1 << 63, "{}", 0), MSKX_EFORMAT,
              "header length 9223372036854775808 is above");
  EXPECT_FAIL(st_raw_len("huge2.safetensors", UINT64_MAX, "{}", 0), MSKX_EFORMAT, "is above");
}

TEST(invalid_json) {
  EXPECT_FAIL(st_raw("json.safetensors", "{\"a\": {\"dtype\": ", 0), MSKX_EFORMAT, "not valid JSON");
  EXPECT_FAIL(st_raw("json2.safetensors", "{} x", 0), MSKX_EFORMAT, "not valid JSON");
  EXPECT_FAIL(st_raw_len("json3.safetensors", 0, "", 0), MSKX_EFORMAT, "not valid JSON");
  CHECK(write_bytes(fx("nul.safetensors"), "\x04\0\0\0\0\0\0\0{}\0 ", 12));
  EXPECT_FAIL(fx("nul.safetensors"), MSKX_EFORMAT, "NUL");
}

TEST(json_array_instead_of_object) {
  EXPECT_FAIL(st_raw("arr.safetensors", "[1, 2]", 0), MSKX_EFORMAT, "not a JSON object");
}

TEST(entry_not_an_object) {
  EXPECT_FAIL(st_raw("ent.safetensors", "{\"w\": 3}", 0), MSKX_EFORMAT, "tensor 'w': entry is not an object");
}

TEST(missing_dtype) {
  EXPECT_FAIL(st_raw("nodt.safetensors", "{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4), MSKX_EFORMAT,
              "tensor 'w': missing \"dtype\"");
}

TEST(dtype_not_a_string) {
  EXPECT_FAIL(st_raw("dtnum.safetensors", "{\"w\": {\"dtype\": 32, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4),
              MSKX_EFORMAT, "tensor 'w': \"dtype\" is not a string");
}

TEST(missing_shape) {
  EXPECT_FAIL(st_raw("nosh.safetensors", "{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4), MSKX_EFORMAT,
              "tensor 'w': missing \"shape\"");
}

TEST(missing_data_offsets) {
  EXPECT_FAIL(st_raw("nooff.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4), MSKX_EFORMAT,
              "tensor 'w': missing \"data_offsets\"");
}

TEST(negative_shape) {
  EXPECT_FAIL(st_raw("neg.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, -1], \"data_offsets\": [0, 4]}}", 4),
              MSKX_EFORMAT, "tensor 'w': shape entry 1 is negative");
}

TEST(shape_with_a_string) {
  EXPECT_FAIL(st_raw("shs.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}}", 8),
              MSKX_EFORMAT, "tensor 'w': shape entry 0 is not an integer");
  EXPECT_FAIL(st_raw("shf.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 8]}}", 8),
              MSKX_EFORMAT, "shape entry 0 is not an integer");
  EXPECT_FAIL(st_raw("shn.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": 2, \"data_offsets\": [0, 8]}}", 8),
              MSKX_EFORMAT, "\"shape\" is not an array");
}

TEST(shape_product_overflow) {
  EXPECT_FAIL(st_raw("ovf.safetensors",
                     "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4294967296], "
                     "\"data_offsets\": [0, 4]}}",
                     4),
              MSKX_EFORMAT, "overflows");
  EXPECT_FAIL(st_raw("ovf2.safetensors",
                     "{\"w\": {\"dtype\": \"F64\", \"shape\": [2147483648, 2147483648], \"data_offsets\": [0, 4]}}", 4),
              MSKX_EFORMAT, "overflows the byte count");
  EXPECT_FAIL(st_raw("big.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1e300], \"data_offsets\": [0, 4]}}", 4),
              MSKX_EFORMAT, "not an integer");
}

TEST(too_many_dimensions) {
  EXPECT_FAIL(st_raw("dims.safetensors",
                     "{\"w\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4),
              MSKX_EUNSUPPORTED, "9 dimensions");
}

TEST(data_offsets_beyond_file) {
  EXPECT_FAIL(st_raw("far.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 12),
              MSKX_EFORMAT, "tensor 'w': data_offsets [0, 16] reach past the 12-byte data section");
  EXPECT_FAIL(st_raw("far2.safetensors",
                     "{\"w\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [18446744073709551615, "
                     "18446744073709551615]}}",
                     12),
              MSKX_EFORMAT, "not a pair of non-negative integers");
}

TEST(data_offsets_malformed) {
  EXPECT_FAIL(st_raw("off1.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4),
              MSKX_EFORMAT, "not a pair");
  EXPECT_FAIL(st_raw("off2.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", 4),
              MSKX_EFORMAT, "end before they begin");
  EXPECT_FAIL(st_raw("off3.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", 4),
              MSKX_EFORMAT, "not a pair");
}

TEST(offsets_shape_size_mismatch) {
  EXPECT_FAIL(st_raw("mis.safetensors",
                     "{\"features.conv0.weight\": {\"dtype\": \"F32\", \"shape\": [64, 3, 7, 7], \"data_offsets\": [0, "
                     "100]}}",
                     100),
              MSKX_EFORMAT,
              "tensor 'features.conv0.weight': data_offsets [0, 100] hold 100 bytes but shape [64, 3, 7, 7] F32 needs "
              "37632");
  EXPECT_FAIL(st_raw("mis16.safetensors", "{\"h\": {\"dtype\": \"F16\", \"shape\": [3], \"data_offsets\": [0, 12]}}", 12),
              MSKX_EFORMAT, "shape [3] F16 needs 6");
}

TEST(unsupported_dtype) {
  EXPECT_FAIL(st_raw("u8.safetensors",
                     "{\"mask\": {\"dtype\": \"U8\", \"shape\": [8], \"data_offsets\": [0, 8]}}", 8),
              MSKX_EUNSUPPORTED, "tensor 'mask': dtype 'U8' not supported");
}

TEST(i64_counter_reads_as_float) {
  /* torchvision's num_batches_tracked: I64 scalar 7 (little-endian). */
  const char *hdr = "{\"bn.num_batches_tracked\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [0, 8]}}";
  size_t hl = strlen(hdr);
  unsigned char buf[256] = {0};
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(buf + 8, hdr, hl);
  buf[8 + hl] = 7;
  const char *p = fx("i64ok.safetensors");
  write_bytes(p, buf, 8 + hl + 8);
  st_file *f;
  mskx_err e = {0};
  CHECK_OK(st_read(p, &f, &e), &e);
  const htensor *t = st_find(f, "bn.num_batches_tracked");
  CHECK(t && t->ndim == 0 && t->data[0] == 7.0f);
  st_free(f);
}

TEST(non_string_metadata) {
  EXPECT_FAIL(st_raw("md.safetensors", "{\"__metadata__\": {\"epoch\": 3}}", 0), MSKX_EFORMAT,
              "metadata 'epoch': value is not a string");
  EXPECT_FAIL(st_raw("md2.safetensors", "{\"__metadata__\": [\"a\"]}", 0), MSKX_EFORMAT,
              "\"__metadata__\" is not an object");
  EXPECT_FAIL(st_raw("md3.safetensors", "{\"__metadata__\": {\"k\": \"a\", \"k\": \"b\"}}", 0), MSKX_EFORMAT,
              "metadata 'k': duplicate key");
}

TEST(duplicate_tensor_names) {
  EXPECT_FAIL(st_raw("dup.safetensors",
                     "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
                     "\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                     8),
              MSKX_EFORMAT, "tensor 'w': duplicate name");
}

TEST(overlapping_tensors) {
  EXPECT_FAIL(st_raw("ovl.safetensors",
                     "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
                     "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                     12),
              MSKX_EFORMAT, "tensors 'a' and 'b' overlap");
}

TEST(hostile_names_are_shown_on_one_line) {
  char hdr[3000];
  char name[2100];
  memset(name, 'x', 2000);
  name[2000] = 0;
  snprintf(hdr, sizeof hdr, "{\"%s\\n\": {\"dtype\": \"U8\", \"shape\": [], \"data_offsets\": [0, 1]}}", name);
  EXPECT_FAIL(st_raw("long.safetensors", hdr, 1), MSKX_EUNSUPPORTED, "xxx...': dtype 'U8'");
  snprintf(hdr, sizeof hdr, "{\"a\\nb\": {\"dtype\": \"U8\", \"shape\": [], \"data_offsets\": [0, 1]}}");
  EXPECT_FAIL(st_raw("nl.safetensors", hdr, 1), MSKX_EUNSUPPORTED, "tensor 'a?b'");
}

TEST(read_mem_equals_read_and_accepts_empty_header) {
  st_file *f;
  mskx_err e = {0};
  const unsigned char buf[] = "\x08\0\0\0\0\0\0\0{}      ";
  CHECK_OK(st_read_mem(buf, 16, "mem", &f, &e), &e);
  CHECK(f->n_tensors == 0 && f->n_meta == 0);
  st_free(f);
  st_free(NULL);
}

/* Every strict prefix of the Python-written file must be refused. */
TEST(every_truncation_fails) {
  CHECK(fixtures());
  unsigned char *buf;
  size_t len;
  mskx_err e = {0};
  CHECK_OK(file_read_all(fx("ref.safetensors"), 0, &buf, &len, &e), &e);
  for (size_t n = 0; n < len; n++) {
    unsigned char *cut = malloc(n ? n : 1); /* exact-size copy so ASan sees any overread */
    memcpy(cut, buf, n);
    st_file *f = NULL;
    int rc = st_read_mem(cut, n, "cut", &f, &e);
    free(cut);
    st_free(f);
    CHECKF(rc != 0, "prefix of %zu/%zu bytes accepted", n, len);
  }
  free(buf);
}

/* Random byte changes in header and data: each read either succeeds or fails
 * with a message naming the file; ASan builds catch stray reads. */
TEST(random_mutations_never_crash) {
  CHECK(fixtures());
  unsigned char *buf;
  size_t len;
  mskx_err e = {0};
  CHECK_OK(file_read_all(fx("ref.safetensors"), 0, &buf, &len, &e), &e);
  rng r = rng_for(11, 0, 0);
  static const char digits[] = "0123456789-\"[]{},.e";
  int ok = 0;
  for (int it = 0; it < 3000; it++) {
    unsigned char *m = malloc(len);
    memcpy(m, buf, len);
    int k = 1 + (int)rng_below(&r, 3);
    for (int j = 0; j < k; j++) {
      size_t at = (size_t)rng_below(&r, len < 700 ? len : 700);
      m[at] = rng_below(&r, 2) ? (unsigned char)digits[rng_below(&r, sizeof digits - 1)] : (unsigned char)rng_u64(&r);
    }
    size_t n = rng_below(&r, 4) == 0 ? (size_t)rng_below(&r, len + 1) : len;
    st_file *f = NULL;
    int rc = st_read_mem(m, n, "mut.safetensors", &f, &e);
    free(m);
    if (rc == 0) {
      ok++;
      st_free(f);
    } else {
      CHECKF(f == NULL && strstr(e.msg, "mut.safetensors"), "bad failure report: %s", e.msg);
    }
  }
  free(buf);
  CHECKF(ok > 0 && ok < 3000, "%d of 3000 mutants accepted: the mutation mix is not exercising both paths", ok);
}

TEST_MAIN()
