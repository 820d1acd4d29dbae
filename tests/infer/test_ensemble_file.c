/* Files of the predictor tree: rewriting an ensemble's threshold
 * (ensemble_set_threshold) and the CAM overlay file names
 * (cam_overlay_name) that `mskx predict` and `mskx eval` share. */
#include <cjson/cJSON.h>
#include "core/util.h"
#include "infer/cam.h"
#include "infer/predictor.h"
#include "infer_fixtures.h"
#include "test.h"

static cJSON *read_back(const char *path) {
  unsigned char *text = NULL;
  size_t len = 0;
  mskx_err e = {0};
  if (file_read_all(path, 1 << 20, &text, &len, &e)) return NULL;
  cJSON *o = cJSON_ParseWithLength((const char *)text, len);
  free(text);
  return o;
}

static void write_text(const char *path, const char *text) {
  mskx_err e = {0};
  if (file_write_atomic(path, text, strlen(text), &e)) abort();
}

TEST(ensemble_threshold_rewritten_other_fields_kept) {
  char p[600];
  fx_path(p, sizeof p, "ens.json");
  write_text(p, "{\"format\": \"mskx-ensemble-1\", \"method\": \"weighted\", \"threshold\": 0.5,\n"
                " \"members\": [{\"path\": \"a.safetensors\", \"weight\": 0.25}, {\"path\": \"b.json\", \"weight\": 0.75}],\n"
                " \"fit\": {\"n_studies\": 12}}\n");
  mskx_err e = {0};
  CHECK_OK(ensemble_set_threshold(p, 0.3125, &e), &e);
  cJSON *o = read_back(p);
  CHECK(o != NULL);
  CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "threshold")) == 0.3125);
  CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(o, "method")), "weighted"));
  cJSON *m = cJSON_GetObjectItem(o, "members");
  CHECK_EQ_INT(cJSON_GetArraySize(m), 2);
  CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 1), "weight")) == 0.75);
  CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "fit"), "n_studies")) == 12);
  cJSON_Delete(o);
  /* Without a threshold field it is added. */
  write_text(p, "{\"format\": \"mskx-ensemble-1\", \"method\": \"mean\", \"members\": []}");
  CHECK_OK(ensemble_set_threshold(p, 1, &e), &e);
  o = read_back(p);
  CHECK(o && cJSON_GetNumberValue(cJSON_GetObjectItem(o, "threshold")) == 1);
  cJSON_Delete(o);
}

TEST(ensemble_threshold_errors) {
  char p[600];
  fx_path(p, sizeof p, "not_ens.json");
  const char *bundle = "{\"format\": \"mskx-bundle-1\", \"models\": {}}";
  write_text(p, bundle);
  mskx_err e = {0};
  CHECK_EQ_INT(ensemble_set_threshold(p, 0.5, &e), MSKX_EFORMAT);
  CHECKF(strstr(e.msg, "not an ensemble"), "%s", e.msg);
  unsigned char *text = NULL;
  size_t len = 0;
  CHECK_OK(file_read_all(p, 1 << 20, &text, &len, &e), &e);
  CHECK(len == strlen(bundle) && !memcmp(text, bundle, len)); /* untouched */
  free(text);
  write_text(p, "{\"format\": \"mskx-ensemble-1\",\n \"threshold\": }");
  CHECK_EQ_INT(ensemble_set_threshold(p, 0.5, &e), MSKX_EFORMAT);
  CHECKF(strstr(e.msg, "not_ens.json:2: malformed JSON"), "%s", e.msg);
  CHECK_EQ_INT(ensemble_set_threshold(p, 1.5, &e), MSKX_EINVAL);
  CHECK_EQ_INT(ensemble_set_threshold(p, NAN, &e), MSKX_EINVAL);
  fx_path(p, sizeof p, "missing.json");
  CHECK_EQ_INT(ensemble_set_threshold(p, 0.5, &e), MSKX_EIO);
}

TEST(overlay_names) {
  char n[CAM_OVERLAY_NAME_MAX];
  cam_overlay_name("MURA-v1.1/valid/XR_WRIST/patient1/study1_positive/", "MURA-v1.1/valid/XR_WRIST/patient1/"
                   "study1_positive/image1.png", 1, n, sizeof n);
  CHECKF(!strcmp(n, "MURA-v1.1_valid_XR_WRIST_patient1_study1_positive__image1.png"), "%s", n);
  cam_overlay_name("./scans/a b/", "./scans/a b/x.y.jpg", 1, n, sizeof n);
  CHECKF(!strcmp(n, "scans_a_b__x.y.png"), "%s", n);
  cam_overlay_name("shots/knee.v2/img.dcm", "shots/knee.v2/img.dcm", 0, n, sizeof n);
  CHECKF(!strcmp(n, "shots_knee.v2_img.png"), "%s", n);
  cam_overlay_name("shots.v2/noext", "shots.v2/noext", 0, n, sizeof n); /* the dot of a folder is no extension */
  CHECKF(!strcmp(n, "shots.v2_noext.png"), "%s", n);
  cam_overlay_name("plain", "plain", 0, n, sizeof n);
  CHECKF(!strcmp(n, "plain.png"), "%s", n);
  /* A long study path keeps its last 150 characters. */
  char longp[400];
  memset(longp, 'a', 300);
  memcpy(longp + 290, "TAILmarker", 10);
  longp[300] = 0;
  cam_overlay_name(longp, "i.png", 1, n, sizeof n);
  CHECK_EQ_INT(strlen(n), 150 + strlen("__i.png"));
  CHECK(strstr(n, "TAILmarker__i.png"));
}

TEST_MAIN()
