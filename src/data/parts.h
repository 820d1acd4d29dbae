/* MURA body-part names ("XR_ELBOW", ...): the one place that knows how a part
 * is spelled, found in a path and matched against what a user typed. */
#ifndef MSKX_DATA_PARTS_H
#define MSKX_DATA_PARTS_H
#include <stdbool.h>
#include <stddef.h>

/* MURA's part folders all start with this prefix. */
#define PART_PREFIX "XR_"
#define PART_PREFIX_LEN 3
/* Room for a canonical part name with its terminating NUL ("XR_SHOULDER" is 12). */
#define PART_NAME_MAX 32

/* The first path component that starts with "XR_" and has more after it;
 * *len receives its length. NULL when there is none. */
const char *part_in_path(const char *path, size_t *len);

/* Copies that component into out (n bytes). False when the path has none or
 * it does not fit. */
bool part_from_path(const char *path, char *out, size_t n);

/* True when name is "XR_" followed by at least one character. */
bool part_has_prefix(const char *name);

/* Canonical part name: upper case, "XR_" prefixed ("wrist" -> "XR_WRIST").
 * False when in is empty, does not fit, or holds a character other than
 * letters, digits and '_'. */
bool part_canonical(const char *in, char out[PART_NAME_MAX]);

/* True when name designates part: equal ignoring case, or equal to part
 * without its "XR_" ("WRIST" names "XR_WRIST"). */
bool part_name_matches(const char *part, const char *name);

#endif
