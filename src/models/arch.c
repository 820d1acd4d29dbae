/* Arch strings -> arch_spec: torchvision's named models and custom DenseNets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "models/net.h"

static int parse_pos_int(const char *arch, const char *key, const char *v, int max, int *out, mskx_err *e) {
  char *end;
  long x = strtol(v, &end, 10);
  if (end == v || *end || x <= 0 || x > max)
    return err_set(e, MSKX_EINVAL, "arch '%s': %s must be an integer in 1..%d, got '%s'", arch, key, max, v);
  *out = (int)x;
  return MSKX_OK;
}

static int parse_custom_densenet(const char *s, arch_spec *a, mskx_err *e) {
  a->family = ARCH_DENSENET;
  a->growth = 32;
  a->bn_size = 4;
  a->init_features = 64;
  a->n_blocks = 0;
  char buf[256];
  if (strlen(s) >= sizeof buf) return err_set(e, MSKX_EINVAL, "arch string too long");
  strcpy(buf, s + strlen("densenet:"));
  int have_blocks = 0;
  char *save = NULL;
  for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    if (!eq) return err_set(e, MSKX_EINVAL, "arch '%s': expected key=value, got '%s'", s, kv);
    *eq = 0;
    const char *k = kv, *v = eq + 1;
    int rc = MSKX_OK;
    if (!strcmp(k, "growth"))
      rc = parse_pos_int(s, k, v, 256, &a->growth, e);
    else if (!strcmp(k, "bn_size"))
      rc = parse_pos_int(s, k, v, 16, &a->bn_size, e);
    else if (!strcmp(k, "init"))
      rc = parse_pos_int(s, k, v, 1024, &a->init_features, e);
    else if (!strcmp(k, "blocks")) {
      have_blocks = 1;
      char *save2 = NULL, vb[128];
      snprintf(vb, sizeof vb, "%s", v);
      for (char *t = strtok_r(vb, "-", &save2); t && !rc; t = strtok_r(NULL, "-", &save2)) {
        if (a->n_blocks == ARCH_MAX_BLOCKS)
          return err_set(e, MSKX_EINVAL, "arch '%s': at most %d blocks", s, ARCH_MAX_BLOCKS);
        rc = parse_pos_int(s, "blocks", t, 128, &a->blocks[a->n_blocks++], e);
      }
      if (!rc && a->n_blocks == 0) return err_set(e, MSKX_EINVAL, "arch '%s': blocks is empty", s);
    } else
      return err_set(e, MSKX_EINVAL, "arch '%s': unknown key '%s' (known: growth, blocks, init, bn_size)", s, k);
    if (rc) return rc;
  }
  if (!have_blocks) return err_set(e, MSKX_EINVAL, "arch '%s': blocks=A-B-... is required", s);
  return MSKX_OK;
}

int arch_parse(const char *s, arch_spec *a, mskx_err *e) {
  static const struct {
    const char *name;
    int n, b[4];
  } dense[] = {{"densenet121", 4, {6, 12, 24, 16}}, {"densenet169", 4, {6, 12, 32, 32}},
               {"densenet201", 4, {6, 12, 48, 32}}};
  memset(a, 0, sizeof *a);
  if (!s || !*s) return err_set(e, MSKX_EINVAL, "empty arch string");
  if (strlen(s) >= sizeof a->name) return err_set(e, MSKX_EINVAL, "arch string too long");
  strcpy(a->name, s);
  for (size_t i = 0; i < sizeof dense / sizeof dense[0]; i++)
    if (!strcmp(s, dense[i].name)) {
      a->family = ARCH_DENSENET;
      a->growth = 32;
      a->bn_size = 4;
      a->init_features = 64;
      a->n_blocks = dense[i].n;
      memcpy(a->blocks, dense[i].b, sizeof dense[i].b);
      return MSKX_OK;
    }
  if (!strcmp(s, "resnet50")) {
    a->family = ARCH_RESNET;
    a->n_blocks = 4;
    int b[4] = {3, 4, 6, 3};
    memcpy(a->blocks, b, sizeof b);
    a->init_features = 64;
    return MSKX_OK;
  }
  if (!strcmp(s, "inception_v3")) {
    a->family = ARCH_INCEPTION;
    return MSKX_OK;
  }
  if (!strncmp(s, "densenet:", 9)) return parse_custom_densenet(s, a, e);
  return err_set(e, MSKX_EINVAL,
                 "unknown arch '%s' (known: densenet121, densenet169, densenet201, resnet50, inception_v3, "
                 "densenet:growth=G,blocks=A-B-C,init=F,bn_size=S)",
                 s);
}

int arch_size_multiple(const arch_spec *a) {
  /* Inception-v3's unpadded convolutions and pools take any size. */
  if (a->family == ARCH_INCEPTION) return 1;
  /* stem /4, then one /2 per transition (densenet) or per later stage (resnet). */
  int m = 4;
  for (int i = 1; i < a->n_blocks; i++) m *= 2;
  return m;
}

int arch_min_size(const arch_spec *a, int aux) {
  if (a->family == ARCH_INCEPTION) return aux ? INCEPTION_AUX_MIN_SIZE : INCEPTION_MIN_SIZE;
  return arch_size_multiple(a);
}
