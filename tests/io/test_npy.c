/* .npy reader/writer tests: files written by NumPy read back bit-exact, files
 * we write are loaded by NumPy, and hostile files fail with a named message. */
#include <stdint.h>
#include <unistd.h>
#include "core/error.h"
#include "core/rng.h"
#include "core/util.h"
#include "io/npy.h"
#include "test.h"

#define IO_FIXTURE_TAG "io_npy"
#include "io/io_fixtures.h"

/* A v1.0 file with the given dict text (newline appended) and n data bytes. */
static const char *npy_raw(const char *name, int major, const char *dict, size_t n) {
  unsigned char buf[4096] = {0};
  size_t dl = strlen(dict) + 1, lb = major == 1 ? 2 : 4;
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (unsigned char)major;
  for (size_t i = 0; i < lb; i++) buf[8 + i] = (unsigned char)(dl >> (8 * i));
  memcpy(buf + 8 + lb, dict, dl - 1);
  buf[8 + lb + dl - 1] = '\n';
  const char *p = fx(name);
  write_bytes(p, buf, 8 + lb + dl + n);
  return p;
}

/* The read must fail with code (0 = any), naming the file and containing what. */
#define EXPECT_FAIL(path, want_code, what)                                                              \
  do {                                                                                             \
    const char *p_ = (path);                                                                       \
    htensor t_;                                                                                    \
    mskx_err e_ = {0};                                                                             \
    int rc_ = npy_read_f32(p_, &t_, &e_);                                                          \
    CHECKF(rc_ != 0, "%s: read succeeded", p_);                                                    \
    CHECKF(e_.code == rc_ && ((want_code) == 0 || rc_ == (want_code)), "code %d, want %d: %s", rc_, (want_code), e_.msg); \
    CHECKF(strstr(e_.msg, p_) && strstr(e_.msg, (what)), "message '%s' lacks path or '%s'", e_.msg, (what)); \
    CHECKF(!strchr(e_.msg, '\n'), "message is not one line: %s", e_.msg);                       \
    CHECK(t_.data == NULL);                                                                        \
  } while (0)

TEST(numpy_written_files_read_bit_exact) {
  CHECK(fixtures());
  FILE *m = fopen(fx("npy_manifest.txt"), "r");
  CHECK(m);
  char name[256];
  int ndim, count = 0;
  while (fscanf(m, "%255s %d", name, &ndim) == 2) {
    int64_t shape[8];
    for (int i = 0; i < ndim; i++) CHECK(fscanf(m, "%lld", (long long *)&shape[i]) == 1);
    char p[300];
    htensor t;
    mskx_err e = {0};
    snprintf(p, sizeof p, "%s.npy", name);
    CHECK_OK(npy_read_f32(fx(p), &t, &e), &e);
    CHECKF(t.ndim == ndim, "%s: ndim %d want %d", name, t.ndim, ndim);
    for (int i = 0; i < ndim; i++) CHECK_EQ_INT(t.shape[i], shape[i]);
    snprintf(p, sizeof p, "%s.f32", name);
    unsigned char *want;
    size_t wl;
    CHECK_OK(file_read_all(fx(p), 0, &want, &wl, &e), &e);
    CHECKF(wl == (size_t)htensor_numel(&t) * 4, "%s: %zu expected bytes for %lld values", name, wl,
           (long long)htensor_numel(&t));
    CHECKF(memcmp(want, t.data, wl) == 0, "%s: values differ from NumPy's", name);
    free(want);
    htensor_release(&t);
    count++;
  }
  fclose(m);
  CHECK_EQ_INT(count, 8);
}

TEST(written_files_load_in_numpy) {
  static const int64_t shapes[][4] = {{3, 4}, {7}, {0}, {2, 0, 5}, {2, 3, 4, 5}};
  static const int ndims[] = {2, 1, 0, 3, 4};
  FILE *m = fopen(fx("c_npy_manifest.txt"), "w");
  CHECK(m);
  rng r = rng_for(7, 1, 2);
  for (int c = 0; c < 5; c++) {
    size_t n = 1;
    for (int i = 0; i < ndims[c]; i++) n *= (size_t)shapes[c][i];
    float *v = malloc(n * 4 + 4);
    for (size_t i = 0; i < n; i++) v[i] = (float)rng_normal(&r) * 100.0f;
    char name[64], p[80];
    mskx_err e = {0};
    snprintf(name, sizeof name, "c_out%d", c);
    snprintf(p, sizeof p, "%s.npy", name);
    CHECK_OK(npy_write_f32(fx(p), v, ndims[c], shapes[c], &e), &e);
    snprintf(p, sizeof p, "%s.raw", name);
    CHECK(write_bytes(fx(p), v, n * 4));
    fprintf(m, "%s %d", name, ndims[c]);
    for (int i = 0; i < ndims[c]; i++) fprintf(m, " %lld", (long long)shapes[c][i]);
    fprintf(m, "\n");
    free(v);
  }
  fclose(m);
  CHECKF(run_tool("check") == 0, "NumPy rejected our .npy files (see output above)");
}

TEST(write_then_read_round_trip) {
  float v[6] = {1.5f, -0.0f, 3e38f, 1e-45f, -7.25f, 0.1f};
  int64_t shape[2] = {2, 3};
  mskx_err e = {0};
  htensor t;
  CHECK_OK(npy_write_f32(fx("rt.npy"), v, 2, shape, &e), &e);
  CHECK_OK(npy_read_f32(fx("rt.npy"), &t, &e), &e);
  CHECK(t.ndim == 2 && t.shape[0] == 2 && t.shape[1] == 3 && t.name == NULL);
  CHECK(memcmp(t.data, v, sizeof v) == 0);
  htensor_release(&t);
  char tmp[64];
  snprintf(tmp, sizeof tmp, "rt.npy.tmp.%ld", (long)getpid());
  CHECK(!path_exists(fx(tmp)));
}

TEST(write_rejects_bad_arguments) {
  int64_t neg[1] = {-2};
  mskx_err e = {0};
  CHECK(npy_write_f32(fx("w.npy"), NULL, 1, neg, &e) == MSKX_EINVAL);
  CHECK(npy_write_f32(fx("w.npy"), NULL, 9, neg, &e) == MSKX_EINVAL);
  int64_t one[1] = {1};
  CHECK(npy_write_f32(fx("w.npy"), NULL, 1, one, &e) == MSKX_EINVAL);
  CHECK(!path_exists(fx("w.npy")));
}

TEST(missing_file) { EXPECT_FAIL(fx("nope.npy"), MSKX_EIO, "cannot open"); }

TEST(empty_file) {
  CHECK(write_bytes(fx("empty.npy"), "", 0));
  EXPECT_FAIL(fx("empty.npy"), MSKX_EFORMAT, "bad magic");
}

TEST(bad_magic) {
  CHECK(write_bytes(fx("magic.npy"), "\x93NUMPZ\x01\x00\x10\x00{}", 12));
  EXPECT_FAIL(fx("magic.npy"), MSKX_EFORMAT, "bad magic");
}

TEST(unsupported_version) {
  EXPECT_FAIL(npy_raw("v4.npy", 4, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 4),
              MSKX_EUNSUPPORTED, "version 4.0");
}

TEST(dtype_f8_from_numpy) {
  CHECK(fixtures());
  EXPECT_FAIL(fx("bad_f8.npy"), MSKX_EUNSUPPORTED, "dtype '<f8' not supported (need float32 '<f4')");
}

TEST(dtype_big_endian_from_numpy) {
  CHECK(fixtures());
  EXPECT_FAIL(fx("bad_be.npy"), MSKX_EUNSUPPORTED, "dtype '>f4'");
}

TEST(fortran_order_from_numpy) {
  CHECK(fixtures());
  EXPECT_FAIL(fx("bad_fortran.npy"), MSKX_EUNSUPPORTED, "fortran_order True");
}

TEST(truncated_data) {
  EXPECT_FAIL(npy_raw("trunc.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 23),
              MSKX_EFORMAT, "truncated");
}

TEST(trailing_bytes) {
  EXPECT_FAIL(npy_raw("trail.npy", 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 25),
              MSKX_EFORMAT, "trailing bytes");
}

TEST(header_length_beyond_file) {
  CHECK(write_bytes(fx("hlen.npy"), "\x93NUMPY\x01\x00\xff\x7f{'descr'", 17));
  EXPECT_FAIL(fx("hlen.npy"), MSKX_EFORMAT, "runs past the end");
}

TEST(malformed_header_dicts) {
  static const char *bad[][2] = {
      {"{'descr': '<f4', 'fortran_order': False 'shape': (2,), }", "missing ','"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ", "malformed"},
      {"'descr': '<f4'", "not a dict"},
      {"{'descr': '<f4', 'fortran_order': False}", "exactly one each"},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", "exactly one each"},
      {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}", "True or False"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': [1]}", "not a tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1 2)}", "malformed"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (x,)}", "not an integer"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", "unexpected key 'extra'"},
      {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", "not a simple type"},
      {"{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}", "missing ','"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk", "after the header"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char name[32];
    snprintf(name, sizeof name, "dict%zu.npy", i);
    EXPECT_FAIL(npy_raw(name, 1, bad[i][0], 4), 0, bad[i][1]);
  }
}

TEST(shape_product_overflow) {
  EXPECT_FAIL(npy_raw("ovf.npy", 1,
                      "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }", 4),
              MSKX_EFORMAT, "overflows");
}

TEST(shape_entry_beyond_int64) {
  EXPECT_FAIL(npy_raw("big.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
                      4),
              MSKX_EFORMAT, "too large");
}

TEST(negative_shape) {
  EXPECT_FAIL(npy_raw("neg.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 3), }", 4),
              MSKX_EFORMAT, "negative");
}

TEST(too_many_dims) {
  EXPECT_FAIL(npy_raw("dims.npy", 1,
                      "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4),
              MSKX_EUNSUPPORTED, "dimensions");
}

TEST(python2_long_suffix_and_double_quotes_accepted) {
  const char *p = npy_raw("py2.npy", 1, "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2L, 1L)}", 8);
  htensor t;
  mskx_err e = {0};
  CHECK_OK(npy_read_f32(p, &t, &e), &e);
  CHECK(t.ndim == 2 && t.shape[0] == 2 && t.shape[1] == 1);
  htensor_release(&t);
}

/* Every strict prefix of a valid file must be refused, without reading past it. */
TEST(every_truncation_fails) {
  float v[5] = {1, 2, 3, 4, 5};
  int64_t shape[1] = {5};
  mskx_err e = {0};
  CHECK_OK(npy_write_f32(fx("full.npy"), v, 1, shape, &e), &e);
  unsigned char *buf;
  size_t len;
  CHECK_OK(file_read_all(fx("full.npy"), 0, &buf, &len, &e), &e);
  for (size_t n = 0; n < len; n++) {
    htensor t;
    CHECK(write_bytes(fx("cut.npy"), buf, n));
    int rc = npy_read_f32(fx("cut.npy"), &t, &e);
    CHECKF(rc != 0, "prefix of %zu/%zu bytes accepted", n, len);
  }
  free(buf);
}

/* Random byte changes: each read either succeeds with a consistent tensor or
 * fails with a message naming the file (ASan builds catch stray reads). */
TEST(random_mutations_never_crash) {
  float v[6] = {1, 2, 3, 4, 5, 6};
  int64_t shape[2] = {2, 3};
  mskx_err e = {0};
  CHECK_OK(npy_write_f32(fx("base.npy"), v, 2, shape, &e), &e);
  unsigned char *buf;
  size_t len;
  CHECK_OK(file_read_all(fx("base.npy"), 0, &buf, &len, &e), &e);
  rng r = rng_for(42, 0, 0);
  const char *p = fx("mut.npy");
  for (int it = 0; it < 300; it++) {
    unsigned char m[256];
    memcpy(m, buf, len);
    int k = 1 + (int)rng_below(&r, 4);
    for (int j = 0; j < k; j++) m[rng_below(&r, 80)] = (unsigned char)rng_below(&r, 256);
    CHECK(write_bytes(p, m, len));
    htensor t;
    int rc = npy_read_f32(p, &t, &e);
    if (rc == 0) {
      CHECK((size_t)htensor_numel(&t) * 4 <= len);
      htensor_release(&t);
    } else {
      CHECKF(strstr(e.msg, p) != NULL, "message lacks the path: %s", e.msg);
    }
  }
  free(buf);
}

TEST_MAIN()
