/* Shared helpers (see util.h). */
#include "core/util.h"
#include "core/error.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int file_read_all(const char *path, size_t max_bytes, unsigned char **data, size_t *len, mskx_err *e) {
  *data = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return err_set(e, MSKX_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return err_set(e, MSKX_EIO, "%s: not a regular file", path);
  }
  size_t n = (size_t)st.st_size;
  if (max_bytes && n > max_bytes) {
    fclose(f);
    return err_set(e, MSKX_ELIMIT, "%s: file is %zu bytes, above the limit of %zu", path, n, max_bytes);
  }
  unsigned char *buf = malloc(n + 1);
  if (!buf) {
    fclose(f);
    return err_set(e, MSKX_ENOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
  }
  errno = 0;
  size_t got = fread(buf, 1, n, f);
  int rerr = ferror(f) ? (errno ? errno : EIO) : 0;
  fclose(f);
  if (got != n || rerr) {
    free(buf);
    if (!rerr) return err_set(e, MSKX_EIO, "%s: read failed: the file shrank while it was read", path);
    return err_set(e, MSKX_EIO, "%s: read failed: %s", path, strerror(rerr));
  }
  buf[n] = 0;
  *data = buf;
  *len = n;
  return MSKX_OK;
}

int atomic_file_open(atomic_file *af, const char *path, mskx_err *e) {
  memset(af, 0, sizeof *af);
  if (strlen(path) >= sizeof af->path) return err_set(e, MSKX_EINVAL, "%s: path too long", path);
  strcpy(af->path, path);
  snprintf(af->tmp, sizeof af->tmp, "%s" ATOMIC_TMP_INFIX "%ld", path, (long)getpid());
  af->f = fopen(af->tmp, "wb");
  if (!af->f) return err_set(e, MSKX_EIO, "%s: cannot create: %s", af->tmp, strerror(errno));
  return MSKX_OK;
}

static int write_failed(atomic_file *af, int err, mskx_err *e) {
  if (!af->err) af->err = err ? err : EIO;
  return err_set(e, MSKX_EIO, "%s: write failed: %s", af->path, strerror(af->err));
}

int atomic_file_write(atomic_file *af, const void *data, size_t n, mskx_err *e) {
  if (af->err) return write_failed(af, af->err, e);
  errno = 0;
  if (n && fwrite(data, 1, n, af->f) != n) return write_failed(af, errno, e);
  return MSKX_OK;
}

int atomic_file_printf(atomic_file *af, mskx_err *e, const char *fmt, ...) {
  if (af->err) return write_failed(af, af->err, e);
  va_list ap;
  va_start(ap, fmt);
  errno = 0;
  int n = vfprintf(af->f, fmt, ap);
  va_end(ap);
  return n < 0 ? write_failed(af, errno, e) : MSKX_OK;
}

static void fsync_parent_dir(const char *path) {
  char copy[4096];
  snprintf(copy, sizeof copy, "%s", path);
  int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

int atomic_file_commit(atomic_file *af, mskx_err *e) {
  if (!af->f) return err_set(e, MSKX_EINTERNAL, "%s: atomic file not open", af->path);
  /* Each step's errno is taken at once: the later ones would overwrite it. */
  int err = af->err, lost = !err && ferror(af->f);
  if (!err && !lost && fflush(af->f) != 0) err = errno ? errno : EIO;
  if (!err && !lost && fsync(fileno(af->f)) != 0) err = errno;
  if (fclose(af->f) != 0 && !err && !lost) err = errno ? errno : EIO;
  af->f = NULL;
  if (err || lost) {
    unlink(af->tmp);
    /* lost: written on af->f directly, and stdio keeps no errno. */
    if (lost) return err_set(e, MSKX_EIO, "%s: write failed (an earlier write to it failed)", af->path);
    return err_set(e, MSKX_EIO, "%s: write failed: %s", af->path, strerror(err));
  }
  if (rename(af->tmp, af->path) != 0) {
    int saved = errno;
    unlink(af->tmp);
    return err_set(e, MSKX_EIO, "%s: cannot rename into place: %s", af->path, strerror(saved));
  }
  fsync_parent_dir(af->path);
  return MSKX_OK;
}

void atomic_file_abort(atomic_file *af) {
  if (af->f) {
    fclose(af->f);
    af->f = NULL;
    unlink(af->tmp);
  }
}

int file_write_atomic(const char *path, const void *data, size_t len, mskx_err *e) {
  atomic_file af;
  int rc = atomic_file_open(&af, path, e);
  if (rc) return rc;
  if ((rc = atomic_file_write(&af, data, len, e))) {
    atomic_file_abort(&af);
    return rc;
  }
  return atomic_file_commit(&af, e);
}

int mkdir_p(const char *path, mskx_err *e) {
  char buf[4096];
  if (strlen(path) >= sizeof buf) return err_set(e, MSKX_EINVAL, "%s: path too long", path);
  strcpy(buf, path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
      return err_set(e, MSKX_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
    *p = '/';
  }
  if (mkdir(buf, 0777) != 0 && errno != EEXIST)
    return err_set(e, MSKX_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
  if (!path_is_dir(buf)) return err_set(e, MSKX_EIO, "%s: exists and is not a directory", buf);
  return MSKX_OK;
}

int path_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

int path_is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int path_join(char *out, size_t n, const char *a, const char *b, mskx_err *e) {
  size_t la = strlen(a);
  int slash = la > 0 && a[la - 1] != '/';
  int w = snprintf(out, n, "%s%s%s", a, slash ? "/" : "", b);
  if (w < 0 || (size_t)w >= n) return err_set(e, MSKX_EINVAL, "path too long: %s/%s", a, b);
  return MSKX_OK;
}

double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *str_dup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

void str_mark_cut(char *buf, size_t n) {
  static const char dots[] = "...";
  if (n < sizeof dots) return;  /* too small to say more */
  memcpy(buf + n - sizeof dots, dots, sizeof dots);
}

int str_copy_marked(char *buf, size_t n, const char *s) {
  if (!n) return 1;
  size_t len = strlen(s);
  if (len < n) {
    memcpy(buf, s, len + 1);
    return 0;
  }
  memcpy(buf, s, n - 1);
  buf[n - 1] = 0;
  str_mark_cut(buf, n);
  return 1;
}

int str_copy_exact(char *buf, size_t n, const char *s, const char *what, mskx_err *e) {
  size_t len = strlen(s);
  if (n && len < n) {
    memcpy(buf, s, len + 1);
    return MSKX_OK;
  }
  if (n) buf[0] = 0;
  return err_set(e, MSKX_ELIMIT, "%s is %zu characters long, more than the %zu allowed: '%.200s...'", what, len,
                 n ? n - 1 : 0, s);
}

/* Text with no leading space (strtol/strtod would skip it) and something in it. */
static int starts_well(const char *s) { return s && *s && !isspace((unsigned char)*s); }

int parse_long(const char *s, long lo, long hi, const char *what, long *out, mskx_err *e) {
  char *end = NULL;
  errno = 0;
  long v = starts_well(s) ? strtol(s, &end, 10) : 0;
  if (!starts_well(s) || *end || errno || v < lo || v > hi)
    return err_set(e, MSKX_EINVAL, "%s is invalid: '%.64s' (expected an integer from %ld to %ld)", what, s ? s : "",
                   lo, hi);
  *out = v;
  return MSKX_OK;
}

int parse_double(const char *s, double lo, double hi, const char *what, double *out, mskx_err *e) {
  char *end = NULL;
  errno = 0;
  double v = starts_well(s) ? strtod(s, &end) : 0;
  if (!starts_well(s) || *end || errno || !isfinite(v) || !(v >= lo && v <= hi))
    return err_set(e, MSKX_EINVAL, "%s is invalid: '%.64s' (expected a number from %g to %g)", what, s ? s : "", lo,
                   hi);
  *out = v;
  return MSKX_OK;
}

int size_mul(size_t a, size_t b, size_t *out) {
  if (a && b > SIZE_MAX / a) return 0;
  *out = a * b;
  return 1;
}

void *big_alloc(size_t bytes) {
  const size_t huge = (size_t)2 << 20;
  if (bytes == 0) return NULL;
  if (bytes < huge) return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
  size_t len = (bytes + huge - 1) & ~(huge - 1);
  void *p = aligned_alloc(huge, len);
  if (p) (void)madvise(p, len, MADV_HUGEPAGE); /* advice only: without THP it still works */
  return p;
}

uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
  return h;
}

uint64_t fnv1a_str(uint64_t h, const char *s) {
  return s ? fnv1a(h, s, strlen(s)) : h;
}

double sigmoid(double z) { return z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z)); }

/* The first number in a small file (cgroup and proc entries); 0 if none. */
static int read_u64(const char *path, uint64_t *out) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  unsigned long long v;
  int ok = fscanf(f, "%llu", &v) == 1;
  fclose(f);
  if (ok) *out = v;
  return ok;
}

uint64_t mem_available_bytes(void) {
  uint64_t avail = 0;
  FILE *f = fopen("/proc/meminfo", "r");
  if (f) {
    char line[256];
    unsigned long long kb;
    while (fgets(line, sizeof line, f))
      if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
        avail = (uint64_t)kb * 1024;
        break;
      }
    fclose(f);
  }
  /* "max" (no limit) does not parse as a number. */
  uint64_t max, cur;
  if (read_u64("/sys/fs/cgroup/memory.max", &max) && read_u64("/sys/fs/cgroup/memory.current", &cur)) {
    uint64_t room = max > cur ? max - cur : 0;
    if (!avail || room < avail) avail = room;
  }
  return avail;
}

uint64_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size, res;
  int ok = fscanf(f, "%llu %llu", &size, &res) == 2;
  fclose(f);
  long page = sysconf(_SC_PAGESIZE);
  return ok && page > 0 ? (uint64_t)res * (uint64_t)page : 0;
}
