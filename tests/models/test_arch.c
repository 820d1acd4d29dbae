/* The architecture table: every row parses, builds and has what the rest of
 * mskx looks up in it (builder, ONNX emitter, classifier name, a valid
 * default size); unknown names list the table; backbone freezing refuses a
 * network whose classifier is not the tail of the parameter buffer. */
#include <string.h>
#include "core/error.h"
#include "models/arch.h"
#include "models/net.h"
#include "test.h"

TEST(every_row_parses_and_has_its_pieces) {
  int n;
  const arch_def *t = arch_table(&n);
  CHECK(n >= 6);
  mskx_err e = {0};
  for (int i = 0; i < n; i++) {
    const arch_def *d = &t[i];
    /* Prefix rows parse from an example with their required options. */
    const char *s = d->parse_options ? "densenet:growth=8,blocks=2-3" : d->name;
    arch_spec a;
    CHECK_OK(arch_parse(s, &a, &e), &e);
    CHECKF(a.family == d->family && arch_find(s) == d, "%s: parsed to another row", s);
    CHECKF(d->family->build && d->family->onnx_graph && d->family->head && d->description && d->syntax,
           "%s: a missing piece", d->name);
    int mult = arch_size_multiple(&a), min = arch_min_size(&a, arch_has_aux(&a));
    CHECKF(d->default_size >= min && d->default_size % mult == 0, "%s: default size %d (min %d, multiple of %d)",
           d->name, d->default_size, min, mult);
    CHECKF(arch_default_size(s) == d->default_size, "%s: arch_default_size", s);
  }
  CHECK_EQ_INT(arch_default_size("inception_v3"), INCEPTION_SIZE);
  CHECK_EQ_INT(arch_default_size("densenet169"), ARCH_PAPER_SIZE);
  CHECK_EQ_INT(arch_default_size("XR_HAND=densenet121,densenet169"), 0);
  CHECK(arch_find("densenet") == NULL && arch_find("densenet1690") == NULL);
}

TEST(custom_densenet_options) {
  arch_spec a;
  mskx_err e = {0};
  CHECK_OK(arch_parse("densenet:growth=12,blocks=2-3-4,init=24,bn_size=2", &a, &e), &e);
  CHECK(a.growth == 12 && a.init_features == 24 && a.bn_size == 2 && a.n_blocks == 3 && a.blocks[2] == 4);
  CHECK_EQ_INT(arch_size_multiple(&a), 16);
  CHECK_OK(arch_parse("densenet:blocks=1", &a, &e), &e);
  CHECK(a.growth == 32 && a.init_features == 64 && a.bn_size == 4 && a.n_blocks == 1);
  CHECK(arch_parse("densenet:growth=8", &a, &e) == MSKX_EINVAL && strstr(e.msg, "blocks=A-B-... is required"));
  CHECK(arch_parse("densenet:blocks=1,depth=3", &a, &e) == MSKX_EINVAL && strstr(e.msg, "unknown key 'depth'"));
}

TEST(unknown_arch_lists_the_table) {
  arch_spec a;
  mskx_err e = {0};
  CHECK(arch_parse("vgg16", &a, &e) == MSKX_EINVAL);
  int n;
  const arch_def *t = arch_table(&n);
  for (int i = 0; i < n; i++) CHECKF(strstr(e.msg, t[i].syntax), "'%s' not in '%s'", t[i].syntax, e.msg);
  CHECK(arch_parse("", &a, &e) == MSKX_EINVAL);
}

/* Every family declares its classifier last, so freezing the backbone is a
 * tail slice; a network that broke the rule is refused with its name. */
TEST(head_slice_is_the_tail_and_violations_are_refused) {
  const char *archs[] = {"densenet:growth=8,blocks=2-2,init=16,bn_size=2", "resnet50", "inception_v3"};
  mskx_err e = {0};
  for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++) {
    net *m = NULL;
    CHECK_OK(net_create(archs[i], NULL, 1, &m, &e), &e);
    size_t off = 0;
    CHECK_OK(net_head_slice(m, &off, &e), &e);
    const param_entry *hw = &m->ps.entries[m->head_w];
    CHECKF(off == hw->offset && off + hw->numel <= m->ps.n_params, "%s: slice at %zu", archs[i], off);
    CHECKF(!strcmp(hw->name, m->arch.family->head) || !strncmp(hw->name, m->arch.family->head, strlen(m->arch.family->head)),
           "%s: head '%s'", archs[i], hw->name);
    /* A classifier declared first: every other parameter would follow it. */
    int saved_w = m->head_w;
    m->head_w = 0;
    CHECKF(net_head_slice(m, &off, &e) == MSKX_EINTERNAL && strstr(e.msg, "declared after the classifier") &&
               strstr(e.msg, "cannot be frozen"),
           "%s: '%s'", archs[i], e.msg);
    m->head_w = saved_w;
    net_destroy(m);
  }
}

TEST_MAIN()
