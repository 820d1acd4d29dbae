/* predict_study: the smallest complete use of the mskx C API. Loads a model
 * (file, per-part bundle or ensemble) and predicts one study from the image
 * files given on the command line.
 *
 *   cc predict_study.c $(pkg-config --cflags --libs mskx)        # libmskx.so, after cmake --install
 *   cc -I<mskx>/include predict_study.c <build>/libmskx.a \
 *      $(pkg-config --libs spng libjpeg libcjson cairo libmicrohttpd zlib) \
 *      -lgdcmMSFF -lgdcmDSED -lgdcmCommon -lstdc++ -ldnnl -fopenmp -lpthread -lm
 *   ./predict_study model.safetensors [--part XR_WRIST] image1.png image2.png ... */
#include <stdio.h>
#include <string.h>
#include "mskx.h"

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL [--part XR_NAME] IMAGE...\n", argv[0]);
    return 2;
  }
  const char *model_path = argv[1], *part = NULL;
  int first = 2;
  if (argc > 3 && !strcmp(argv[2], "--part")) {
    part = argv[3];
    first = 4;
  }
  if (first >= argc) {
    fprintf(stderr, "%s: no images given\n", argv[0]);
    return 2;
  }

  mskx_err err;
  mskx_model *model = NULL;
  if (mskx_model_load(model_path, NULL, &model, &err) != MSKX_OK) {
    fprintf(stderr, "%s: %s\n", argv[0], err.msg);
    return 1;
  }
  struct mskx_model_info info;
  mskx_model_info(model, &info);
  printf("model: %s (%s, arch %s)\n", info.path, info.kind_name, info.arch);

  mskx_predict_options opt;
  mskx_predict_options_default(&opt); /* mean of image probabilities, as the MURA paper */
  mskx_result *res = NULL;
  int rc = mskx_predict_files(model, (const char *const *)(argv + first), argc - first, part, &opt, &res, &err);
  if (rc != MSKX_OK) {
    fprintf(stderr, "%s: %s (%s)\n", argv[0], err.msg, mskx_status_name(rc));
    mskx_model_free(model);
    return 1;
  }
  printf("study: probability %.6f, %s (threshold %.4f), part %s\n", res->probability,
         res->abnormal ? "abnormal" : "normal", res->threshold, res->part[0] ? res->part : "unknown");
  for (int i = 0; i < res->n_images; i++)
    printf("  %s: %.6f\n", res->images[i].name, res->images[i].probability);
  mskx_result_free(res);
  mskx_model_free(model);
  return 0;
}
