/* Minimal test harness: each test file defines TEST(name) functions; main()
 * runs them all and prints "PASS name" / "FAIL name: why" per test, then
 * "N passed, N failed". tests/run sums these lines over all test programs.
 * Usage: a test program runs every test, or only those named on its command line. */
#ifndef MSKX_TEST_H
#define MSKX_TEST_H
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*test_fn)(void);
typedef struct test_case {
  const char *name;
  test_fn fn;
} test_case;

#define TEST_MAX 512
static test_case test_registry[TEST_MAX];
static int test_count;
static int test_failed_flag;
static char test_fail_msg[2048];

static inline void test_register(const char *name, test_fn fn) {
  if (test_count < TEST_MAX) test_registry[test_count++] = (test_case){name, fn};
}

#define TEST(name)                                                                   \
  static void test_##name(void);                                                     \
  __attribute__((constructor)) static void test_reg_##name(void) {                   \
    test_register(#name, test_##name);                                               \
  }                                                                                  \
  static void test_##name(void)

/* The first failure's "file:line: message" (a long message is cut: it is
 * for people, and the test fails anyway). */
__attribute__((format(printf, 3, 4))) static inline void test_note_failure(const char *file, int line,
                                                                           const char *fmt, ...) {
  if (test_failed_flag) return;
  int o = snprintf(test_fail_msg, sizeof test_fail_msg, "%.200s:%d: ", file, line);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(test_fail_msg + o, sizeof test_fail_msg - (size_t)o, fmt, ap);
  va_end(ap);
}

/* snprintf for a test's diagnostics, which may be cut (they are for people,
 * and the test fails anyway); GCC's truncation warning stays on for the rest. */
__attribute__((format(printf, 3, 4))) static inline int test_fmt(char *buf, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = vsnprintf(buf, n, fmt, ap);
  va_end(ap);
  return r;
}

/* Records a failure with a message and returns from the test. */
#define FAILF(...)                                        \
  do {                                                    \
    test_note_failure(__FILE__, __LINE__, __VA_ARGS__);   \
    test_failed_flag = 1;                                 \
    return;                                               \
  } while (0)

#define CHECK(cond)                                \
  do {                                             \
    if (!(cond)) FAILF("check failed: %s", #cond); \
  } while (0)
#define CHECKF(cond, ...)            \
  do {                               \
    if (!(cond)) FAILF(__VA_ARGS__); \
  } while (0)
#define CHECK_EQ_INT(a, b)                                                              \
  do {                                                                                  \
    long long a_ = (long long)(a), b_ = (long long)(b);                                 \
    if (a_ != b_) FAILF("%s == %s failed: %lld vs %lld", #a, #b, a_, b_);               \
  } while (0)
#define CHECK_NEAR(a, b, tol)                                                           \
  do {                                                                                  \
    double a_ = (double)(a), b_ = (double)(b);                                          \
    if (!(fabs(a_ - b_) <= (tol))) FAILF("%s ~ %s failed: %.10g vs %.10g (tol %g)", #a, #b, a_, b_, (double)(tol)); \
  } while (0)
/* Checks an mskx call returned 0; prints its message otherwise. */
#define CHECK_OK(call, errp)                                                            \
  do {                                                                                  \
    int rc_ = (call);                                                                   \
    if (rc_ != 0) FAILF("%s returned %d: %s", #call, rc_, (errp)->msg);                 \
  } while (0)

static inline int test_main(int argc, char **argv) {
  int passed = 0, failed = 0;
  for (int i = 0; i < test_count; i++) {
    if (argc > 1) {
      int want = 0;
      for (int a = 1; a < argc; a++) want |= strcmp(argv[a], test_registry[i].name) == 0;
      if (!want) continue;
    }
    test_failed_flag = 0;
    test_fail_msg[0] = 0;
    test_registry[i].fn();
    if (test_failed_flag) {
      printf("FAIL %s: %s\n", test_registry[i].name, test_fail_msg);
      failed++;
    } else {
      printf("PASS %s\n", test_registry[i].name);
      passed++;
    }
    fflush(stdout);
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

#define TEST_MAIN() \
  int main(int argc, char **argv) { return test_main(argc, argv); }

#endif
