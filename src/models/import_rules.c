/* mskx import's name rules (see import_rules.h): Keras applications'
 * DenseNet layer names, and torchvision's old DenseNet keys. */
#include "models/import_rules.h"
#include <string.h>

/* torchvision's densenet _load_state_dict: the key pattern
 * ^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$
 * loses the '.' between its two groups ("norm.1.weight" -> "norm1.weight"). */
void torch_fix_old_densenet_name(char *k) {
  static const char *const mods[] = {"norm", "relu", "conv"};
  static const char *const leaves[] = {"weight", "bias", "running_mean", "running_var"};
  for (size_t m = 0; m < 3; m++) {
    size_t ml = strlen(mods[m]);
    for (char *p = strstr(k, mods[m]); p; p = strstr(p + 1, mods[m])) {
      /* before: "denselayer<digits>." */
      char *q = p;
      if (q == k || q[-1] != '.') continue;
      q--;
      char *d = q;
      while (d > k && d[-1] >= '0' && d[-1] <= '9') d--;
      if (d == q || (size_t)(d - k) < 10 || strncmp(d - 10, "denselayer", 10)) continue;
      /* after: ".[12].<leaf>" to the end */
      char *r = p + ml;
      if (r[0] != '.' || (r[1] != '1' && r[1] != '2') || r[2] != '.') continue;
      for (size_t l = 0; l < 4; l++)
        if (!strcmp(r + 3, leaves[l])) {
          memmove(r, r + 1, strlen(r + 1) + 1);
          return;
        }
    }
  }
}

/* keras/applications/densenet.py. The stem is "conv1/conv" in Keras 2.x and
 * keras-applications (the published ImageNet .h5 files), "conv1_conv" in
 * Keras 3; dense block b is conv<b+1>, transition t is pool<t+1>. */
static const keras_rule densenet_rules[] = {
    {"conv1/conv", "features.conv0", KR_CONV, {0, 0}},
    {"conv1_conv", "features.conv0", KR_CONV, {0, 0}},
    {"conv1/bn", "features.norm0", KR_BN, {0, 0}},
    {"conv1_bn", "features.norm0", KR_BN, {0, 0}},
    {"conv%d_block%d_0_bn", "features.denseblock%d.denselayer%d.norm1", KR_BN, {-1, 0}},
    {"conv%d_block%d_1_conv", "features.denseblock%d.denselayer%d.conv1", KR_CONV, {-1, 0}},
    {"conv%d_block%d_1_bn", "features.denseblock%d.denselayer%d.norm2", KR_BN, {-1, 0}},
    {"conv%d_block%d_2_conv", "features.denseblock%d.denselayer%d.conv2", KR_CONV, {-1, 0}},
    {"pool%d_bn", "features.transition%d.norm", KR_BN, {-1, 0}},
    {"pool%d_conv", "features.transition%d.conv", KR_CONV, {-1, 0}},
    {"bn", "features.norm5", KR_BN, {0, 0}},
};

const struct keras_map keras_densenet_map = {
    densenet_rules, sizeof densenet_rules / sizeof densenet_rules[0],
    "Keras densenet.preprocess_input (mode 'torch'): RGB in [0,1], normalised with ImageNet mean/std"};
