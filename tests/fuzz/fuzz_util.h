/* Shared by the libFuzzer targets: parsers that take a path read the fuzz
 * input through a memfd ("/proc/self/fd/N"), so no file is left behind and
 * nothing touches the disk. */
#ifndef MSKX_FUZZ_UTIL_H
#define MSKX_FUZZ_UTIL_H
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes data into a fresh memfd and its path into path; returns the fd
 * (close it after the call) or -1. */
static inline int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t n) {
  int fd = memfd_create("mskx-fuzz", MFD_CLOEXEC);
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < size) {
    ssize_t w = write(fd, data + done, size - done);
    if (w <= 0) {
      close(fd);
      return -1;
    }
    done += (size_t)w;
  }
  snprintf(path, n, "/proc/self/fd/%d", fd);
  return fd;
}

#endif
