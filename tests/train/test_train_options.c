/* The training options table (train_options, core/options.h): every row
 * round-trips through config.json, refuses values outside its range with
 * its name in the message, changes the fingerprint unless it is local to a
 * process, and is documented in `mskx train --help` and
 * docs/training_options.md. */
#include <float.h>
#include <limits.h>
#include <stdlib.h>
#include "test.h"
#include "train/lr_find.h"
#include "train/trainer.h"

#define NROWS train_options_count
#define ROW(i) (&train_options[i])

static int fields_equal(const opt_spec *s, const train_config *a, const train_config *b) {
  const char *p = (const char *)a + s->off, *q = (const char *)b + s->off;
  if (s->type == OPT_STRING || s->type == OPT_PATH || s->type == OPT_ENUM) return !strcmp(p, q);
  return !memcmp(p, q, s->size);
}

/* A valid value other than the default, as command-line text (NULL: none found). */
static const char *other_value(const opt_spec *s, char *buf, size_t n) {
  train_config d, c;
  train_config_default(&d);
  mskx_err e = {0, ""};
  switch (s->type) {
    case OPT_BOOL: return "1";
    case OPT_U64: return "12345678901234567890";
    case OPT_INT:
    case OPT_DOUBLE:
    case OPT_FLOAT: {
      double cand[] = {s->hi, s->lo, (s->lo + s->hi) / 2, s->def + 1, 0.25};
      for (size_t k = 0; k < sizeof cand / sizeof *cand; k++) {
        if (!isfinite(cand[k]) || cand[k] > FLT_MAX) continue;
        snprintf(buf, n, "%.17g", cand[k]);
        c = d;
        if (!opt_parse(s, &c, buf, &e) && !fields_equal(s, &c, &d)) return buf;
      }
      return NULL;
    }
    default: break;
  }
  static const char *const words[] = {"bf16", "sgd", "cosine", "val_kappa", "loss", "none", "balanced",
                                      "minmax", "first", "off", "densenet121", "XR_HAND", "some/path"};
  for (size_t k = 0; k < sizeof words / sizeof *words; k++) {
    c = d;
    if (!opt_parse(s, &c, words[k], &e) && !fields_equal(s, &c, &d)) return words[k];
  }
  return NULL;
}

TEST(every_row_round_trips_through_json) {
  for (size_t i = 0; i < NROWS; i++) {
    const opt_spec *s = ROW(i);
    if (s->type == OPT_CLEAR) continue;
    char buf[64];
    const char *v = other_value(s, buf, sizeof buf);
    CHECKF(v, "%s: no valid non-default value found", s->key);
    train_config a, b;
    train_config_default(&a);
    mskx_err e = {0, ""};
    CHECK_OK(opt_parse(s, &a, v, &e), &e);
    char *text = train_config_to_json(&a);
    CHECK(text);
    int rc = train_config_from_json(text, "config.json", &b, &e);
    char key[80];
    snprintf(key, sizeof key, "\"%s\":", s->key);
    int in_json = strstr(text, key) != NULL;
    free(text);
    CHECK_OK(rc, &e);
    if (s->flags & OPT_NOT_SAVED) {
      CHECKF(!in_json && !fields_equal(s, &a, &b), "%s is not to be saved", s->key);
    } else {
      CHECKF(in_json, "%s missing from config.json", s->key);
      CHECKF(fields_equal(s, &a, &b), "%s = %s did not round-trip", s->key, v);
    }
  }
}

TEST(out_of_range_values_are_refused_by_name) {
  int tried = 0;
  for (size_t i = 0; i < NROWS; i++) {
    const opt_spec *s = ROW(i);
    if (s->type != OPT_INT && s->type != OPT_DOUBLE && s->type != OPT_FLOAT) continue;
    char name[96], buf[64];
    opt_name(s, name, sizeof name);
    double bad[2] = {s->lo - 1, s->hi * 2 + 1};
    for (int k = 0; k < 2; k++) {
      if (!isfinite(bad[k]) || fabs(bad[k]) > 1e15) continue;
      if (s->type == OPT_INT && (bad[k] < INT_MIN || bad[k] > INT_MAX)) continue;  /* an int cannot hold it */
      train_config c;
      train_config_default(&c);
      mskx_err e = {0, ""};
      /* As a command-line value. */
      snprintf(buf, sizeof buf, "%.17g", bad[k]);
      CHECKF(opt_parse(s, &c, buf, &e) == MSKX_EINVAL, "%s accepted %s", name, buf);
      CHECKF(strstr(e.msg, name) && strstr(e.msg, "out of range"), "%s: message '%s'", name, e.msg);
      /* As a value that came another way (config.json): validation. */
      strcpy(c.data, "d");
      strcpy(c.out, "o");
      char *p = (char *)&c + s->off;
      if (s->type == OPT_INT) *(int *)p = (int)bad[k];
      else if (s->type == OPT_DOUBLE) *(double *)p = bad[k];
      else *(float *)p = (float)bad[k];
      if (bad[k] != s->def) {  /* a default outside the range is a sentinel (threads 0: all cores) */
        CHECKF(train_config_validate(&c, &e) == MSKX_EINVAL, "validation accepted %s = %s", name, buf);
        CHECKF(strstr(e.msg, name), "%s: validation message '%s'", name, e.msg);
      }
      tried++;
    }
  }
  CHECKF(tried > 40, "only %d out-of-range values tried", tried);
  /* Words, choices and syntax. */
  train_config c;
  train_config_default(&c);
  mskx_err e = {0, ""};
  CHECK(opt_parse(ROW(opt_find(train_options, NROWS, "optimizer")), &c, "adagrad", &e) == MSKX_EINVAL);
  CHECKF(strstr(e.msg, "--optimizer") && strstr(e.msg, "adamw"), "message '%s'", e.msg);
  CHECK(opt_parse(ROW(opt_find(train_options, NROWS, "batch")), &c, "8x", &e) == MSKX_EINVAL);
  CHECKF(strstr(e.msg, "--batch"), "message '%s'", e.msg);
  CHECK(opt_parse(ROW(opt_find(train_options, NROWS, "seed")), &c, "-1", &e) == MSKX_EINVAL);
  CHECK(opt_parse(ROW(opt_find(train_options, NROWS, "class-weights")), &c, "0:1", &e) == MSKX_EINVAL);
  CHECKF(strstr(e.msg, "--class-weights"), "message '%s'", e.msg);
  char big[2000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  CHECK(opt_parse(ROW(opt_find(train_options, NROWS, "data")), &c, big, &e) == MSKX_EINVAL);
  CHECKF(strstr(e.msg, "--data") && strstr(e.msg, "too long"), "message '%s'", e.msg);
}

TEST(fingerprint_follows_the_local_flag) {
  train_config d;
  train_config_default(&d);
  uint64_t h0 = train_config_fingerprint(&d);
  int local = 0, shared = 0;
  for (size_t i = 0; i < NROWS; i++) {
    const opt_spec *s = ROW(i);
    if (s->type == OPT_CLEAR) continue;
    char buf[64];
    const char *v = other_value(s, buf, sizeof buf);
    CHECKF(v, "%s: no value", s->key);
    train_config c = d;
    mskx_err e = {0, ""};
    CHECK_OK(opt_parse(s, &c, v, &e), &e);
    uint64_t h = train_config_fingerprint(&c);
    if (s->flags & OPT_LOCAL) {
      CHECKF(h == h0, "%s may differ between processes but changes the fingerprint", s->key);
      local++;
    } else {
      CHECKF(h != h0, "%s = %s leaves the fingerprint unchanged", s->key, v);
      shared++;
    }
  }
  /* Paths and thread counts are local; sync_bn is an ordinary row now. */
  CHECK(local >= 6 && shared > 40);
  CHECK(!(ROW(opt_find(train_options, NROWS, "sync-bn"))->flags & OPT_LOCAL));
  CHECK(ROW(opt_find(train_options, NROWS, "threads"))->flags & OPT_LOCAL);
}

/* The table's defaults are the paper's recipe and agree with the optimizer's
 * and schedule's own code except where the paper says otherwise (lr). */
TEST(defaults_resolve_to_themselves) {
  train_config a, b;
  train_config_default(&a);
  b = a;
  mskx_err e = {0, ""};
  CHECK_OK(train_config_resolve(&b, NULL, &e), &e);
  CHECK(!memcmp(&a, &b, sizeof a));
  CHECK(a.optim.lr == 1e-4 && !strcmp(a.optim.name, "adam") && a.sched.factor == 0.1 && a.sched.patience == 1);
  CHECK(a.size == 320 && a.batch == 8 && !strcmp(a.arch, "densenet169") && a.aug.p_hflip == 0.5f &&
        a.aug.rotate_deg == 30.0f);
  optim_config adam;
  CHECK_OK(optim_config_defaults("adam", &adam, &e), &e);
  adam.lr = a.optim.lr;
  CHECK(!memcmp(&adam, &a.optim, sizeof adam));
}

TEST(resolve_applies_named_defaults_but_keeps_given_values) {
  unsigned char given[TRAIN_OPTIONS_MAX] = {0};
  train_config c;
  train_config_default(&c);
  mskx_err e = {0, ""};
  CHECK_OK(opt_parse(ROW(opt_find(train_options, NROWS, "optimizer")), &c, "sgd", &e), &e);
  CHECK_OK(train_config_resolve(&c, given, &e), &e);
  CHECK(c.optim.lr == 1e-2 && c.sched.lr0 == 1e-2);
  train_config_default(&c);
  int lr = opt_find(train_options, NROWS, "lr"), m = opt_find(train_options, NROWS, "momentum");
  CHECK_OK(opt_parse(ROW(opt_find(train_options, NROWS, "optimizer")), &c, "sgd", &e), &e);
  CHECK_OK(opt_parse(ROW(lr), &c, "0.3", &e), &e);
  CHECK_OK(opt_parse(ROW(m), &c, "0.9", &e), &e);
  given[lr] = given[m] = 1;
  CHECK_OK(train_config_resolve(&c, given, &e), &e);
  CHECK(c.optim.lr == 0.3 && c.optim.momentum == 0.9 && c.sched.lr0 == 0.3);
  /* --schedule step: Keras's step defaults, --lr auto leaves the rate to the sweep. */
  train_config_default(&c);
  memset(given, 0, sizeof given);
  CHECK_OK(opt_parse(ROW(opt_find(train_options, NROWS, "schedule")), &c, "step", &e), &e);
  CHECK_OK(opt_parse(ROW(lr), &c, "auto", &e), &e);
  CHECK_OK(train_config_resolve(&c, given, &e), &e);
  CHECK(c.lr_auto == 1 && c.optim.lr == 1e-4 && c.sched.patience == 10 && c.sched.drop == 0.5);
  /* inception_v3's size unless given; --aux-weight only where there is an auxiliary head. */
  train_config_default(&c);
  strcpy(c.arch, "inception_v3");
  CHECK_OK(train_config_resolve(&c, given, &e), &e);
  CHECK_EQ_INT(c.size, 299);
  train_config_default(&c);
  given[opt_find(train_options, NROWS, "aux-weight")] = 1;
  CHECK(train_config_resolve(&c, given, &e) == MSKX_EINVAL);
  CHECKF(strstr(e.msg, "--aux-weight"), "message '%s'", e.msg);
}

TEST(old_config_files_read) {
  /* Booleans written as 0/1 before they were JSON booleans; sync_bn as a boolean. */
  const char *text = "{\"format\": \"mskx-train-config-1\", \"per_part\": 1, \"strict\": 0, \"sync_bn\": true,"
                     " \"precision_bf16\": 1, \"seed\": \"7\"}";
  train_config c;
  mskx_err e = {0, ""};
  CHECK_OK(train_config_from_json(text, "config.json", &c, &e), &e);
  CHECK(c.per_part == 1 && c.strict == 0 && c.sync_bn == 1 && c.prec == PREC_BF16 && c.seed == 7);
  CHECK(train_config_from_json("{\"format\": \"mskx-train-config-1\", \"sync_bn\": 2}", "c.json", &c, &e) ==
        MSKX_EFORMAT);
  CHECKF(strstr(e.msg, "sync_bn"), "message '%s'", e.msg);
  CHECK(train_config_from_json("{\"format\": \"mskx-train-config-1\", \"aug_zoom\": 1e300}", "c.json", &c, &e) ==
        MSKX_EFORMAT);
  CHECK(train_config_from_json("{\"format\": \"mskx-train-config-1\", \"precision_bf16\": 3}", "c.json", &c, &e) ==
        MSKX_EFORMAT);
  CHECKF(strstr(e.msg, "precision_bf16") && strstr(e.msg, "fp32|bf16|auto"), "message '%s'", e.msg);
  /* Choice messages list the values. */
  train_config_default(&c);
  CHECK(opt_parse(ROW(opt_find(train_options, NROWS, "precision")), &c, "fp16", &e) == MSKX_EINVAL);
  CHECKF(strstr(e.msg, "expected fp32, bf16 or auto, got 'fp16'"), "message '%s'", e.msg);
}

static char *read_text(const char *cmd_or_path, int is_cmd) {
  FILE *f = is_cmd ? popen(cmd_or_path, "r") : fopen(cmd_or_path, "r");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  for (size_t r; buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
    n += r;
    if (n + 1 == cap) buf = realloc(buf, cap *= 2);
  }
  if (buf) buf[n] = 0;
  if (is_cmd) pclose(f);
  else fclose(f);
  return buf;
}

/* "--flag" followed by a character that cannot continue a flag name. */
static int mentions_flag(const char *text, const char *flag) {
  char needle[96];
  snprintf(needle, sizeof needle, "--%s", flag);
  for (const char *p = text; (p = strstr(p, needle)); p++) {
    char c = p[strlen(needle)];
    if (!(c == '-' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return 1;
  }
  return 0;
}

static const char *tn(opt_type t) {
  static const char *n[] = {"int", "u64", "double", "float", "string", "path", "enum", "enum", "bool", "flag"};
  return n[t];
}
/* The row of docs/training_options.md's option tables for s. */
static void md_row(const opt_spec *s, char *out, size_t n) {
  char def[128] = "", range[128] = "";
  if (s->type == OPT_INT || s->type == OPT_DOUBLE || s->type == OPT_FLOAT) snprintf(def, sizeof def, "%g", s->def);
  else if (s->type == OPT_U64) snprintf(def, sizeof def, "%.0f", s->def);
  else if (s->type == OPT_BOOL) snprintf(def, sizeof def, "%s", s->def ? "on" : "off");
  else if (s->def_str && *s->def_str) snprintf(def, sizeof def, "%s", s->def_str);
  if (s->type == OPT_INT || s->type == OPT_DOUBLE || s->type == OPT_FLOAT || s->type == OPT_U64) {
    if (s->type == OPT_U64) snprintf(range, sizeof range, "0 .. 2^64-1");
    else snprintf(range, sizeof range, "%g .. %g", s->lo, s->hi);
  } else if (s->choices) {
    snprintf(range, sizeof range, "%s", s->choices);
    for (char *p = range; *p; p++) if (*p == '|') *p = ',';
  }
  char flags[64] = "";
  if (s->flags & OPT_LOCAL) strcat(flags, "local ");
  if (s->flags & OPT_NOT_SAVED) strcat(flags, "not saved ");
  char help[640];
  snprintf(help, sizeof help, "%s", s->help ? s->help : "");
  for (char *p = help; *p; p++) { if (*p == '\n') *p = ' '; if (*p == '|') *p = '/'; }
  snprintf(out, n, "| %s%s%s | %s%s%s | %s | %s | %s | %s | %s%s |", s->flag ? "`--" : "", s->flag ? s->flag : "", s->flag ? "`" : "",
         s->key ? "`" : "", s->key ? s->key : "", s->key ? "`" : "", tn(s->type), range, def, s->source ? s->source : "", flags[0] ? flags : "", help);
}

/* The docs hold each row as md_row writes it (MSKX_OPTIONS_MD=1 prints them all, to paste). */
static int docs_row_present(const char *docs, const opt_spec *s, char *msg, size_t n) {
  char row[1024];
  md_row(s, row, sizeof row);
  if (getenv("MSKX_OPTIONS_MD")) printf("%s\n", row);
  if (strstr(docs, row)) return 1;
  snprintf(msg, n, "docs/training_options.md lacks the row\n%s", row);
  return 0;
}

TEST(every_option_in_help_and_docs) {
  const char *bin = getenv("MSKX_BIN") ? getenv("MSKX_BIN") : "build/mskx";
  const char *root = getenv("MSKX_ROOT") ? getenv("MSKX_ROOT") : ".";
  char cmd[1200], path[1200];
  snprintf(cmd, sizeof cmd, "'%s' train --help", bin);
  char *help = read_text(cmd, 1);
  snprintf(cmd, sizeof cmd, "'%s' lr-find --help", bin);
  char *lf_help = read_text(cmd, 1);
  snprintf(path, sizeof path, "%s/docs/training_options.md", root);
  char *docs = read_text(path, 0);
  CHECKF(help && strstr(help, "usage: mskx train"), "no help from %s", bin);
  CHECKF(lf_help && strstr(lf_help, "usage: mskx lr-find"), "no lr-find help from %s", bin);
  CHECKF(docs, "cannot read %.1000s", path);
  for (size_t i = 0; i < NROWS; i++) {
    const opt_spec *s = ROW(i);
    if (s->flag) {
      CHECKF(mentions_flag(help, s->flag), "--%s missing from mskx train --help", s->flag);
      CHECKF(mentions_flag(docs, s->flag), "--%s missing from docs/training_options.md", s->flag);
    }
    char msg[1200];
    CHECKF(docs_row_present(docs, s, msg, sizeof msg), "%s", msg);
  }
  for (size_t i = 0; i < lr_find_option_count; i++) {
    CHECKF(mentions_flag(lf_help, lr_find_option_rows[i].flag), "--%s missing from lr-find --help",
           lr_find_option_rows[i].flag);
    char msg[1200];
    CHECKF(docs_row_present(docs, &lr_find_option_rows[i], msg, sizeof msg), "%s", msg);
  }
  free(help);
  free(lf_help);
  free(docs);
}

TEST_MAIN()
