/* libFuzzer: a run folder's config.json, read by `mskx train --resume`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "train/trainer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  train_config c;
  mskx_err e = {0, ""};
  /* A resumed run trusts its arch map too: parse it as validation and the per-part lookup do. */
  if (!train_config_from_json(text, "config.json", &c, &e)) {
    char arch[TRAIN_ARCH_MAX];
    train_config_validate(&c, &e);
    train_arch_for(c.arch, "XR_HAND", arch, sizeof arch, &e);
    (void)train_config_fingerprint(&c);
    /* Whatever was accepted is written back and read again unchanged (the
     * options table's JSON round trip): a difference is a defect. */
    char *once = train_config_to_json(&c), *twice = NULL;
    train_config r;
    if (once && !train_config_from_json(once, "config.json", &r, &e)) twice = train_config_to_json(&r);
    if (once && (!twice || strcmp(once, twice))) __builtin_trap();
    free(once);
    free(twice);
  }
  free(text);
  return 0;
}
