/* Option tables: one row per option of a configuration struct (its JSON key,
 * command-line flag, type, field, range, default and the default's source,
 * help line), and the generic code that every use of an option goes through:
 * defaults, parsing a value, range checks, the JSON round trip and a
 * fingerprint. A module publishes its table (train_options in
 * train/trainer.h); src/cli/cli_options.c builds getopt_long's options and the
 * usage text from the same rows. */
#ifndef MSKX_CORE_OPTIONS_H
#define MSKX_CORE_OPTIONS_H
#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

/* The largest compute thread count a --threads option takes (every
 * command's row uses it). */
#define OPT_MAX_THREADS 1024

typedef enum opt_type {
  OPT_INT,     /* int */
  OPT_U64,     /* uint64_t; a decimal string in JSON (doubles lose bits past 2^53) */
  OPT_DOUBLE,  /* double */
  OPT_FLOAT,   /* float */
  OPT_STRING,  /* char[size] */
  OPT_PATH,    /* char[size] naming a file or folder */
  OPT_ENUM,    /* char[size] holding one of choices */
  OPT_CHOICE,  /* int: the index of its value in choices; the index in JSON */
  OPT_BOOL,    /* int 0/1; a flag without a value; true/false in JSON (0/1 read too) */
  OPT_CLEAR    /* a flag without a value that zeroes size bytes at off; not in JSON */
} opt_type;

/* opt_spec.flags */
enum {
  OPT_LOCAL = 1u << 0,     /* may differ between the processes of a job (paths, threads): not fingerprinted */
  OPT_NOT_SAVED = 1u << 1, /* not in JSON (a property of this process's launch, not of the run) */
  OPT_REQUIRED = 1u << 2,  /* must be given (a string: non-empty) */
  OPT_HIDE_DEFAULT = 1u << 3, /* usage: the help line says the default (it depends on another option) */
};

typedef struct opt_spec {
  const char *key;         /* JSON key; NULL: the command line only */
  const char *flag;        /* command-line flag without "--"; NULL: JSON only */
  char letter;             /* a one-letter alias on the command line ('o': -o); 0: none */
  opt_type type;
  size_t off, size;        /* the field: offsetof(struct, member), sizeof member */
  double lo, hi;           /* numbers: the range a value may be given in, inclusive; the
                              default is valid even outside it (0 = all cores) */
  const char *choices;     /* OPT_ENUM, OPT_CHOICE: "a|b|c" */
  double def;              /* default of a number or bool */
  const char *def_str;     /* default of a string, enum or choice ("" or NULL: empty) */
  const char *source;      /* where the default comes from */
  const char *arg;         /* the value's name in the usage ("N", "LR"); NULL for flags without a value */
  const char *help;        /* one line; '\n' continues it on the next */
  const char *group;       /* usage section heading */
  unsigned flags;          /* OPT_* above */
  /* A value that is a word instead of a number: "auto" sets the int at
   * word_off to 1 (and leaves the field as it is). NULL: none. */
  const char *word;
  size_t word_off;
  /* Strings: a check of the value's syntax beyond its length (NULL: none). */
  int (*check)(const char *value, mskx_err *e);
} opt_spec;

/* The option's name in messages: "--flag" or, for JSON-only keys, the key. */
const char *opt_name(const opt_spec *s, char *buf, size_t n);
/* Sets every field of the table to its default. */
void opt_defaults(const opt_spec *t, size_t n, void *base);
/* Parses value (NULL for flags without a value) into s's field, range
 * checked; errors (MSKX_EINVAL) name the option and the accepted values. */
int opt_parse(const opt_spec *s, void *base, const char *value, mskx_err *e);
/* Range, choice and syntax checks of every field (what opt_parse checks,
 * for values that came another way, e.g. from JSON). */
int opt_check_all(const opt_spec *t, size_t n, const void *base, mskx_err *e);
/* The table's fields into a JSON object (a cJSON *), every entry with a key
 * and without OPT_NOT_SAVED. Returns 0 or MSKX_ENOMEM. */
struct cJSON;
int opt_to_json(const opt_spec *t, size_t n, const void *base, struct cJSON *o, mskx_err *e);
/* Fields from a JSON object; keys it lacks keep their values (files
 * written before an option existed). Types are checked (MSKX_EFORMAT, the
 * message names path and key); ranges are opt_check_all's. */
int opt_from_json(const opt_spec *t, size_t n, const struct cJSON *o, const char *path, void *base, mskx_err *e);
/* FNV-1a over the keys and values of every entry without OPT_LOCAL,
 * continuing from h. */
uint64_t opt_fingerprint(const opt_spec *t, size_t n, const void *base, uint64_t h);
/* The index of the entry whose flag or key is name, -1 if none. */
int opt_find(const opt_spec *t, size_t n, const char *name);
/* The default as the usage shows it; 0 (and "") when there is none to show
 * (flags, empty strings, OPT_HIDE_DEFAULT). */
int opt_default_text(const opt_spec *s, char *buf, size_t n);

#endif
