/* Study listing (data/study_folder.h): what counts as an image, natural
 * order, and the images of a study given as a file or a folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/util.h"
#include "data/study_folder.h"
#include "test.h"

static char base[256];

static void cleanup(void) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
  if (system(cmd)) { /* best effort */
  }
}

static void touch(const char *dir, const char *name, const void *data, size_t n) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "wb");
  if (!f) abort();
  if (n) fwrite(data, 1, n, f);
  fclose(f);
}

static const char *setup(void) {
  if (!base[0]) {
    snprintf(base, sizeof base, "/tmp/mskx_test_sf_XXXXXX");
    if (!mkdtemp(base)) abort();
    atexit(cleanup);
  }
  return base;
}

TEST(image_names) {
  CHECK(ds_is_image_name("a.png") && ds_is_image_name("dir/b.JPG") && ds_is_image_name("c.jpeg"));
  CHECK(ds_is_image_name("d.dcm") && ds_is_image_name("e.DICOM"));
  CHECK(!ds_is_image_name(".hidden.png") && !ds_is_image_name("notes.txt") && !ds_is_image_name("png"));
  CHECK(!ds_is_image_name(".png") && !ds_is_image_name("dir/"));
}

TEST(natural_order) {
  CHECK(ds_natural_cmp("image2", "image10") < 0);
  CHECK(ds_natural_cmp("patient9", "patient10") < 0);
  CHECK(ds_natural_cmp("image007", "image7") == 0); /* leading zeros do not count */
  CHECK(ds_natural_cmp("a", "b") < 0 && ds_natural_cmp("b", "a") > 0 && ds_natural_cmp("x1y", "x1y") == 0);
  CHECK(ds_natural_cmp("image1", "image1.png") < 0);
}

TEST(folder_lists_images_in_natural_order) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/study1_positive", setup());
  mskx_err e = {0};
  CHECK_OK(mkdir_p(dir, &e), &e);
  char sub[600];
  snprintf(sub, sizeof sub, "%s/sub.png", dir); /* a folder named like an image is skipped */
  CHECK_OK(mkdir_p(sub, &e), &e);
  touch(dir, "image10.png", "x", 1);
  touch(dir, "image2.jpg", "x", 1);
  touch(dir, ".image1.png", "x", 1);
  touch(dir, "notes.txt", "x", 1);
  unsigned char dcm[140] = {0};
  memcpy(dcm + 128, "DICM", 4);
  touch(dir, "IM0001", dcm, sizeof dcm);   /* DICOM without an extension */
  touch(dir, "README", "plain text", 10); /* no extension, not DICOM */
  char **v = NULL;
  int n = 0;
  CHECK_OK(study_folder_list(dir, &v, &n, &e), &e);
  CHECK_EQ_INT(n, 3);
  char want[3][700];
  snprintf(want[0], sizeof want[0], "%s/IM0001", dir);
  snprintf(want[1], sizeof want[1], "%s/image2.jpg", dir);
  snprintf(want[2], sizeof want[2], "%s/image10.png", dir);
  for (int i = 0; i < 3; i++) CHECKF(!strcmp(v[i], want[i]), "%d: %s, want %s", i, v[i], want[i]);
  study_folder_list_free(v, n);
}

TEST(file_is_a_study_of_one_image) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/single", setup());
  mskx_err e = {0};
  CHECK_OK(mkdir_p(dir, &e), &e);
  touch(dir, "x.png", "x", 1);
  char path[600];
  snprintf(path, sizeof path, "%s/x.png", dir);
  char **v = NULL;
  int n = 0;
  CHECK_OK(study_folder_list(path, &v, &n, &e), &e);
  CHECK_EQ_INT(n, 1);
  CHECK(!strcmp(v[0], path));
  study_folder_list_free(v, n);
}

TEST(missing_and_empty_are_errors) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/empty", setup());
  mskx_err e = {0};
  CHECK_OK(mkdir_p(dir, &e), &e);
  touch(dir, "notes.txt", "x", 1);
  char **v = (char **)1;
  int n = 7;
  CHECK_EQ_INT(study_folder_list(dir, &v, &n, &e), MSKX_EINVAL);
  CHECK(v == NULL && n == 0);
  CHECKF(strstr(e.msg, "no .png/.jpg/.jpeg/.dcm images in the folder"), "%s", e.msg);
  char missing[600];
  snprintf(missing, sizeof missing, "%s/nope", dir);
  CHECK_EQ_INT(study_folder_list(missing, &v, &n, &e), MSKX_EIO);
  CHECKF(strstr(e.msg, "nope: no such file or folder"), "%s", e.msg);
  CHECK(v == NULL && n == 0);
}

TEST_MAIN()
