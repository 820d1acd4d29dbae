/* Small shared helpers: whole-file reads, atomic writes, paths, clocks. */
#ifndef MSKX_CORE_UTIL_H
#define MSKX_CORE_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "mskx.h"

/* Reads a whole file into a malloc'd buffer (NUL-terminated for convenience;
 * *len excludes the terminator). Refuses files above max_bytes (0 = no cap). */
int file_read_all(const char *path, size_t max_bytes, unsigned char **data, size_t *len, mskx_err *e);

/* Atomic output: writes go to "<path>.tmp.<pid>", atomic_file_commit fsyncs,
 * closes and renames it over path (then fsyncs the directory), so readers
 * never see a half-written file. atomic_file_abort removes the temporary.
 * Write through atomic_file_write/atomic_file_printf, not on f directly: they
 * keep the errno of the first failed write (stdio forgets it once the buffer
 * is dropped), so a full disk is reported as "No space left on device". */
#define ATOMIC_TMP_INFIX ".tmp."
typedef struct atomic_file {
  FILE *f;
  int err;  /* errno of the first failed write, 0 while all went well */
  char path[4096];
  char tmp[4200];
} atomic_file;
int atomic_file_open(atomic_file *af, const char *path, mskx_err *e);
/* Both return MSKX_OK, or MSKX_EIO naming the file and the system's reason
 * (the file stays open: abort or commit it, commit then fails too). */
int atomic_file_write(atomic_file *af, const void *data, size_t n, mskx_err *e);
int atomic_file_printf(atomic_file *af, mskx_err *e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int atomic_file_commit(atomic_file *af, mskx_err *e);
void atomic_file_abort(atomic_file *af);
/* Writes a buffer to path atomically. */
int file_write_atomic(const char *path, const void *data, size_t len, mskx_err *e);

/* Creates a directory and its parents (mkdir -p). */
int mkdir_p(const char *path, mskx_err *e);
int path_exists(const char *path);
int path_is_dir(const char *path);
/* Joins a and b with one '/' into out (size n); returns MSKX_EINVAL if it does not fit. */
int path_join(char *out, size_t n, const char *a, const char *b, mskx_err *e);

/* Monotonic time in seconds. */
double now_seconds(void);

/* strdup that returns NULL on allocation failure (C11 has no strdup). */
char *str_dup(const char *s);
/* For diagnostics, where a shortened text is still useful: copies s into buf
 * (size n > 0); a text that does not fit is cut and ends in "...", so the
 * reader sees that it was cut. Returns 1 when s was cut, else 0. Names and
 * paths that must be exact are refused instead (path_join, str_copy_exact). */
int str_copy_marked(char *buf, size_t n, const char *s);
/* Ends buf (size n, holding a string cut to n - 1 bytes) with "...". */
void str_mark_cut(char *buf, size_t n);
/* Copies s into buf (size n) when it fits; otherwise leaves buf empty and
 * fails with MSKX_ELIMIT, naming `what` and the limit. */
int str_copy_exact(char *buf, size_t n, const char *s, const char *what, mskx_err *e);

/* Checked number parsing for outside text (files, environment, metadata):
 * the whole of s must be one decimal integer (or one finite number) in
 * [lo, hi]; leading/trailing spaces, an empty string, overflow and trailing
 * characters are refused. On failure *out is untouched and the message says
 * "<what> is invalid: '<s>' (expected ...)". */
int parse_long(const char *s, long lo, long hi, const char *what, long *out, mskx_err *e);
int parse_double(const char *s, double lo, double hi, const char *what, double *out, mskx_err *e);
/* Overflow-checked size multiplication; returns 0 on overflow. */
int size_mul(size_t a, size_t b, size_t *out);

/* Memory for large numeric buffers (activations, parameters, gradients):
 * 64-byte aligned; from 2 MiB on, 2 MiB aligned and advised for transparent
 * huge pages (fewer TLB misses in the memory-bound kernels). NULL on failure
 * (or size 0); release with free(). */
void *big_alloc(size_t bytes);

/* 64-bit FNV-1a: FNV1A_INIT is the offset basis; fnv1a() folds n bytes into h
 * and fnv1a_str() a NUL-terminated string (NULL folds nothing), so a hash can
 * be built over several pieces. For cache keys and fingerprints, not security. */
#define FNV1A_INIT 14695981039346656037ULL
uint64_t fnv1a(uint64_t h, const void *p, size_t n);
uint64_t fnv1a_str(uint64_t h, const char *s);

/* Memory this process may still take: the smaller of the kernel's
 * MemAvailable and, inside a cgroup (v2) with a memory limit, that limit
 * minus the group's usage. 0 if neither can be read. */
uint64_t mem_available_bytes(void);
/* This process's resident set now (/proc/self/statm), 0 if unreadable. */
uint64_t rss_bytes(void);

/* The logistic function 1 / (1 + e^-z), without overflow for large |z|. */
double sigmoid(double z);

#endif
