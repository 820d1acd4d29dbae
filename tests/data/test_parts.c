/* Part-name helpers (data/parts.h): finding the XR_ component of a path,
 * canonical names and matching what a user typed. */
#include <string.h>
#include "data/parts.h"
#include "test.h"

TEST(part_from_path_finds_the_first_xr_component) {
  char p[PART_NAME_MAX];
  CHECK(part_from_path("MURA-v1.1/valid/XR_WRIST/patient1/study1_positive/", p, sizeof p));
  CHECK(!strcmp(p, "XR_WRIST"));
  CHECK(part_from_path("XR_HAND", p, sizeof p) && !strcmp(p, "XR_HAND"));
  CHECK(part_from_path("a/XR_/XR_ELBOW/XR_HAND/x.png", p, sizeof p) && !strcmp(p, "XR_ELBOW"));
  CHECK(!part_from_path("a/XR_/b", p, sizeof p));     /* "XR_" alone is no part */
  CHECK(!part_from_path("a/xr_wrist/b", p, sizeof p)); /* folders are upper case in MURA */
  CHECK(!part_from_path("", p, sizeof p));
  CHECK(!part_from_path("a/bXR_WRIST/c", p, sizeof p));
  char small[8];
  CHECK(!part_from_path("a/XR_SHOULDER/b", small, sizeof small)); /* does not fit */
  CHECK(part_from_path("a/XR_HAND/b", small, sizeof small) && !strcmp(small, "XR_HAND"));
}

TEST(part_in_path_gives_position_and_length) {
  const char *path = "train/XR_FOREARM/p1";
  size_t len = 0;
  const char *at = part_in_path(path, &len);
  CHECK(at == path + 6);
  CHECK_EQ_INT(len, 10);
  CHECK(part_in_path("train/p1/s1", &len) == NULL);
}

TEST(part_has_prefix) {
  CHECK(part_has_prefix("XR_ELBOW"));
  CHECK(!part_has_prefix("XR_"));
  CHECK(!part_has_prefix("ELBOW"));
  CHECK(!part_has_prefix("xr_elbow"));
}

TEST(part_canonical_names) {
  char c[PART_NAME_MAX];
  CHECK(part_canonical("wrist", c) && !strcmp(c, "XR_WRIST"));
  CHECK(part_canonical("xr_Wrist", c) && !strcmp(c, "XR_WRIST"));
  CHECK(part_canonical("XR_HAND", c) && !strcmp(c, "XR_HAND"));
  CHECK(!part_canonical("", c));
  CHECK(!part_canonical("wr ist", c));
  CHECK(!part_canonical("wrist/..", c));
  char longname[PART_NAME_MAX + 1];
  memset(longname, 'A', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  CHECK(!part_canonical(longname, c));
  longname[PART_NAME_MAX - 1 - 3] = 0; /* with "XR_" exactly PART_NAME_MAX - 1 characters */
  CHECK(part_canonical(longname, c));
  CHECK_EQ_INT(strlen(c), PART_NAME_MAX - 1);
}

TEST(part_name_matches_with_or_without_prefix) {
  CHECK(part_name_matches("XR_WRIST", "XR_WRIST"));
  CHECK(part_name_matches("XR_WRIST", "xr_wrist"));
  CHECK(part_name_matches("XR_WRIST", "WRIST"));
  CHECK(part_name_matches("XR_WRIST", "wrist"));
  CHECK(!part_name_matches("XR_WRIST", "HAND"));
  CHECK(!part_name_matches("XR_WRIST", "XR_"));
  CHECK(part_name_matches("ALL", "all"));
  CHECK(!part_name_matches("ALL", "XR_ALL"));
}

TEST_MAIN()
