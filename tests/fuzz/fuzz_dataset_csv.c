/* libFuzzer: the generic dataset CSV (image_path,label[,study_id][,part][,split])
 * and MURA's four CSVs, read through dataset_open as `--data` does. The
 * listed files need not exist (file checks are off), so every line reaches
 * the parsers. The first input byte picks which CSV the rest becomes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "data/dataset.h"

static char dir[64];
static const char *const mura_csvs[] = {"train_image_paths.csv", "valid_image_paths.csv",
                                        "train_labeled_studies.csv", "valid_labeled_studies.csv"};

static void cleanup(void) {
  char p[160];
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s/MURA-v1.1/%s", dir, mura_csvs[i]);
    unlink(p);
  }
  snprintf(p, sizeof p, "%s/MURA-v1.1", dir);
  rmdir(p);
  snprintf(p, sizeof p, "%s/generic.csv", dir);
  unlink(p);
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  snprintf(dir, sizeof dir, "/tmp/mskx-fuzz-csv.XXXXXX");
  if (!mkdtemp(dir)) return 0;
  char p[160];
  snprintf(p, sizeof p, "%s/MURA-v1.1", dir);
  mkdir(p, 0700);
  atexit(cleanup);
  return 0;
}

static int write_file(const char *path, const uint8_t *d, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = fwrite(d, 1, n, f);
  return fclose(f) || w != n ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int which = data[0] % 5;
  char p[160], open_path[160];
  if (which == 4) {
    snprintf(p, sizeof p, "%s/generic.csv", dir);
    snprintf(open_path, sizeof open_path, "%s", p);
  } else {
    /* The other three CSVs get a minimal valid line so parsing reaches the fuzzed one. */
    static const char *const ok[] = {"MURA-v1.1/train/XR_HAND/patient1/study1_positive/image1.png\n",
                                     "MURA-v1.1/valid/XR_HAND/patient2/study1_negative/image1.png\n",
                                     "MURA-v1.1/train/XR_HAND/patient1/study1_positive/,1\n",
                                     "MURA-v1.1/valid/XR_HAND/patient2/study1_negative/,0\n"};
    for (int i = 0; i < 4; i++) {
      snprintf(p, sizeof p, "%s/MURA-v1.1/%s", dir, mura_csvs[i]);
      if (i == which) write_file(p, data + 1, size - 1);
      else write_file(p, (const uint8_t *)ok[i], strlen(ok[i]));
    }
    snprintf(open_path, sizeof open_path, "%s/MURA-v1.1", dir);
  }
  if (which == 4 && write_file(p, data + 1, size - 1)) return 0;
  dataset_options o = {0};
  o.skip_file_check = 1;
  dataset *d = NULL;
  mskx_err e = {0, ""};
  if (dataset_open(open_path, &o, &d, &e) == MSKX_OK) dataset_free(d);
  return 0;
}
