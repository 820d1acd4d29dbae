/* Private to src/models: mskx import's name rules as plain data and string
 * functions, apart from import.c so that the architecture table (arch.c)
 * can point at them without pulling the file readers (HDF5, libzip) into
 * every static link of libmskx. */
#ifndef MSKX_MODELS_IMPORT_RULES_H
#define MSKX_MODELS_IMPORT_RULES_H
#include <stddef.h>

typedef enum keras_kind { KR_CONV, KR_BN } keras_kind;

/* A Keras layer-name pattern ("%d": a decimal number, captured) and its
 * torchvision prefix, printf'd with the captures plus add[]. */
typedef struct keras_rule {
  const char *pattern, *target;
  keras_kind kind;
  int add[2];
} keras_rule;

/* A family's Keras layer-name rules (arch_family.keras, arch.c). */
struct keras_map {
  const keras_rule *rules;
  size_t n_rules;
  const char *preprocessing;
};

/* The families' rules (arch_family.keras and .fix_torch_name). */
extern const struct keras_map keras_densenet_map;
void torch_fix_old_densenet_name(char *name);

#endif
