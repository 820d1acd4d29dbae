/* The restricted state-dict unpickler (see torch_pickle.h). Objects live in
 * an arena (one list) so memo sharing and even cycles need no reference
 * counts; nothing here walks object graphs recursively. */
#include "io/torch_pickle.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"

typedef enum pkl_global {
  G_ORDERED_DICT, G_REBUILD_TENSOR_V2, G_REBUILD_TENSOR, G_REBUILD_PARAMETER,
  G_STORAGE_F32, G_STORAGE_F16, G_STORAGE_BF16, G_STORAGE_F64, G_STORAGE_I64
} pkl_global;

static const struct {
  const char *module, *name;
  pkl_global id;
} allowed[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2},
    {"torch._utils", "_rebuild_tensor", G_REBUILD_TENSOR},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER},
    {"torch", "FloatStorage", G_STORAGE_F32},
    {"torch", "HalfStorage", G_STORAGE_F16},
    {"torch", "BFloat16Storage", G_STORAGE_BF16},
    {"torch", "DoubleStorage", G_STORAGE_F64},
    {"torch", "LongStorage", G_STORAGE_I64},
};

typedef struct parser {
  const unsigned char *buf;
  size_t len, pos, op_pos;
  const char *what;
  mskx_err *e;
  pkl_doc *doc;
  pkl_obj **stack;
  size_t sp, stack_cap;
  size_t marks[PKL_MAX_MARKS];
  int n_marks;
  pkl_obj **memo;
  size_t memo_len, memo_cap;
} parser;

const char *pkl_kind_name(pkl_kind k) {
  static const char *const names[] = {"None",   "bool",    "int",     "float",   "str",   "bytes",
                                      "tuple",  "list",    "dict",    "global",  "storage", "tensor"};
  return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static int fail(parser *p, const char *fmt, const char *arg) {
  char msg[512];
  snprintf(msg, sizeof msg, fmt, arg);
  return err_set(p->e, MSKX_EFORMAT, "%s: pickle offset %zu: %s", p->what, p->op_pos, msg);
}

static pkl_obj *new_obj(parser *p, pkl_kind k) {
  if (p->doc->n_objects >= PKL_MAX_OBJECTS) {
    err_set(p->e, MSKX_ELIMIT, "%s: more than %d pickle objects", p->what, PKL_MAX_OBJECTS);
    return NULL;
  }
  pkl_obj *o = calloc(1, sizeof *o);
  if (!o) {
    err_set(p->e, MSKX_ENOMEM, "out of memory");
    return NULL;
  }
  o->kind = k;
  o->next_alloc = p->doc->objects;
  p->doc->objects = o;
  p->doc->n_objects++;
  return o;
}

static int push(parser *p, pkl_obj *o) {
  if (!o) return p->e->code ? p->e->code : MSKX_ENOMEM;
  if (p->sp == p->stack_cap) {
    if (p->stack_cap >= PKL_MAX_STACK)
      return err_set(p->e, MSKX_ELIMIT, "%s: pickle stack deeper than %d", p->what, PKL_MAX_STACK);
    size_t nc = p->stack_cap ? p->stack_cap * 2 : 64;
    pkl_obj **s = realloc(p->stack, nc * sizeof *s);
    if (!s) return err_set(p->e, MSKX_ENOMEM, "out of memory");
    p->stack = s;
    p->stack_cap = nc;
  }
  p->stack[p->sp++] = o;
  return MSKX_OK;
}

/* The lowest stack index usable by the current opcode (above the last mark). */
static size_t floor_sp(const parser *p) { return p->n_marks ? p->marks[p->n_marks - 1] : 0; }

static pkl_obj *pop(parser *p) {
  if (p->sp <= floor_sp(p)) {
    fail(p, "stack underflow%s", "");
    return NULL;
  }
  return p->stack[--p->sp];
}

static pkl_obj *top(parser *p) {
  if (p->sp <= floor_sp(p)) {
    fail(p, "stack underflow%s", "");
    return NULL;
  }
  return p->stack[p->sp - 1];
}

/* Pops to the last mark; *base is where the marked items start. */
static int pop_mark(parser *p, size_t *base) {
  if (!p->n_marks) return fail(p, "no MARK to pop to%s", "");
  *base = p->marks[--p->n_marks];
  return MSKX_OK;
}

static int need(parser *p, size_t n) {
  if (n > p->len - p->pos) return fail(p, "truncated (an operand runs past the end)%s", "");
  return MSKX_OK;
}

static uint64_t rd_le(parser *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v |= (uint64_t)p->buf[p->pos + i] << (8 * i);
  p->pos += (size_t)n;
  return v;
}

static int seq_append(parser *p, pkl_obj *seq, pkl_obj *v) {
  if (seq->len == seq->cap) {
    size_t nc = seq->cap ? seq->cap * 2 : 8;
    pkl_obj **it = realloc(seq->items, nc * sizeof *it);
    if (!it) return err_set(p->e, MSKX_ENOMEM, "out of memory");
    seq->items = it;
    if (seq->kind == PKL_DICT) {
      pkl_obj **vs = realloc(seq->vals, nc * sizeof *vs);
      if (!vs) return err_set(p->e, MSKX_ENOMEM, "out of memory");
      seq->vals = vs;
    }
    seq->cap = nc;
  }
  seq->items[seq->len++] = v;
  return MSKX_OK;
}

/* Appends without looking for an equal key (that would be quadratic on
 * hostile input); lookups take the last match, as Python's dict keeps the
 * last value, and consumers refuse duplicate tensor names. */
static int dict_set(parser *p, pkl_obj *d, pkl_obj *k, pkl_obj *v) {
  if (d->kind != PKL_DICT) return fail(p, "SETITEM on a %s", pkl_kind_name(d->kind));
  size_t at = d->len;
  int rc = seq_append(p, d, k);
  if (!rc) d->vals[at] = v;
  return rc;
}

static pkl_obj *make_seq(parser *p, pkl_kind k, size_t base) {
  pkl_obj *t = new_obj(p, k);
  if (!t) return NULL;
  for (size_t i = base; i < p->sp; i++)
    if (seq_append(p, t, p->stack[i])) return NULL;
  p->sp = base;
  return t;
}

static int op_string(parser *p, uint64_t n, pkl_kind k) {
  if (n > PKL_MAX_STRING)
    return err_set(p->e, MSKX_ELIMIT, "%s: pickle offset %zu: a string of %llu bytes (limit %d)", p->what, p->op_pos,
                   (unsigned long long)n, PKL_MAX_STRING);
  int rc = need(p, (size_t)n);
  if (rc) return rc;
  pkl_obj *o = new_obj(p, k);
  if (!o) return p->e->code;
  o->s = malloc((size_t)n + 1);
  if (!o->s) return err_set(p->e, MSKX_ENOMEM, "out of memory");
  memcpy(o->s, p->buf + p->pos, (size_t)n);
  o->s[n] = 0;
  o->len = (size_t)n;
  p->pos += (size_t)n;
  return push(p, o);
}

static int op_int(parser *p, int64_t v) {
  pkl_obj *o = new_obj(p, PKL_INT);
  if (o) o->i = v;
  return push(p, o);
}

/* A text line of GLOBAL (module or name). */
static int read_line(parser *p, char *out) {
  size_t i = 0;
  while (p->pos < p->len && p->buf[p->pos] != '\n') {
    if (i + 1 >= PKL_MAX_LINE) return fail(p, "GLOBAL name longer than the limit%s", "");
    out[i++] = (char)p->buf[p->pos++];
  }
  if (p->pos >= p->len) return fail(p, "truncated GLOBAL%s", "");
  p->pos++;
  out[i] = 0;
  for (size_t j = 0; j < i; j++)
    if ((unsigned char)out[j] < 0x20 || (unsigned char)out[j] > 0x7e) out[j] = '?';
  return MSKX_OK;
}

static int op_global(parser *p, const char *module, const char *name) {
  for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
    if (!strcmp(module, allowed[i].module) && !strcmp(name, allowed[i].name)) {
      pkl_obj *o = new_obj(p, PKL_GLOBAL);
      if (o) o->i = allowed[i].id;
      return push(p, o);
    }
  return err_set(p->e, MSKX_EUNSUPPORTED,
                 "%s: the checkpoint refers to the Python global '%.100s.%.100s', which no state dict needs: refused "
                 "(mskx reads only tensors, and a checkpoint must never run code)",
                 p->what, module, name);
}

static int get_int(parser *p, const pkl_obj *o, const char *what, int64_t *v) {
  if (!o || (o->kind != PKL_INT && o->kind != PKL_BOOL)) return fail(p, "%s must be an int", what);
  *v = o->i;
  return MSKX_OK;
}

/* ('storage', <storage type>, key, location, numel[, view metadata]) */
static int op_persid(parser *p) {
  pkl_obj *t = pop(p);
  if (!t) return p->e->code;
  if (t->kind != PKL_TUPLE || t->len < 5 || t->len > 6) return fail(p, "persistent id is not a storage tuple%s", "");
  pkl_obj **it = t->items;
  if (it[0]->kind != PKL_STR || strcmp(it[0]->s, "storage")) return fail(p, "persistent id is not 'storage'%s", "");
  if (it[1]->kind != PKL_GLOBAL || it[1]->i < G_STORAGE_F32) return fail(p, "persistent id names no storage type%s", "");
  if (it[2]->kind != PKL_STR || it[2]->len == 0 || it[2]->len > 64) return fail(p, "storage key is invalid%s", "");
  if (t->len == 6 && it[5]->kind != PKL_NONE) return fail(p, "storage views are not supported%s", "");
  int64_t numel = 0;
  int rc = get_int(p, it[4], "storage size", &numel);
  if (rc) return rc;
  if (numel < 0) return fail(p, "negative storage size%s", "");
  for (const char *c = it[2]->s; *c; c++)
    if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_'))
      return fail(p, "storage key '%.64s' has characters a key never has", it[2]->s);
  static const elem_dtype dts[] = {EL_F32, EL_F16, EL_BF16, EL_F64, EL_I64};
  pkl_obj *s = new_obj(p, PKL_STORAGE);
  if (!s) return p->e->code;
  s->dtype = dts[it[1]->i - G_STORAGE_F32];
  s->s = it[2]->s; /* owned by the key string object */
  s->numel = numel;
  return push(p, s);
}

static int int_tuple(parser *p, const pkl_obj *t, const char *what, int64_t *out, int *n) {
  if (t->kind != PKL_TUPLE) return fail(p, "tensor %s is not a tuple", what);
  if (t->len > PKL_MAX_DIMS) return fail(p, "tensor %s has too many dimensions", what);
  for (size_t i = 0; i < t->len; i++) {
    int rc = get_int(p, t->items[i], what, &out[i]);
    if (rc) return rc;
    if (out[i] < 0) return fail(p, "negative tensor %s", what);
  }
  *n = (int)t->len;
  return MSKX_OK;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])
 * and the older _rebuild_tensor(storage, offset, size, stride). */
static pkl_obj *rebuild_tensor(parser *p, const pkl_obj *args, int v2) {
  size_t lo = v2 ? 6 : 4, hi = v2 ? 7 : 4;
  if (args->len < lo || args->len > hi) {
    fail(p, "tensor rebuild with the wrong number of arguments%s", "");
    return NULL;
  }
  const pkl_obj *st = args->items[0];
  if (st->kind != PKL_STORAGE) {
    fail(p, "tensor rebuild without a storage%s", "");
    return NULL;
  }
  pkl_obj *t = new_obj(p, PKL_TENSOR);
  if (!t) return NULL;
  t->storage = (pkl_obj *)st;
  int ns = 0, nt = 0;
  if (get_int(p, args->items[1], "storage offset", &t->offset) ||
      int_tuple(p, args->items[2], "size", t->shape, &ns) || int_tuple(p, args->items[3], "stride", t->stride, &nt))
    return NULL;
  if (t->offset < 0 || ns != nt) {
    fail(p, "tensor size and stride disagree%s", "");
    return NULL;
  }
  t->ndim = ns;
  return t;
}

static int op_reduce(parser *p) {
  pkl_obj *args = pop(p), *fn = args ? pop(p) : NULL;
  if (!fn) return p->e->code;
  if (fn->kind != PKL_GLOBAL) return fail(p, "REDUCE calls a %s", pkl_kind_name(fn->kind));
  if (args->kind != PKL_TUPLE) return fail(p, "REDUCE arguments are a %s, not a tuple", pkl_kind_name(args->kind));
  pkl_obj *r = NULL;
  switch ((pkl_global)fn->i) {
    case G_ORDERED_DICT:
      if (args->len) return fail(p, "OrderedDict with arguments%s", "");
      r = new_obj(p, PKL_DICT);
      break;
    case G_REBUILD_TENSOR_V2:
    case G_REBUILD_TENSOR:
      r = rebuild_tensor(p, args, fn->i == G_REBUILD_TENSOR_V2);
      break;
    case G_REBUILD_PARAMETER:
      if (args->len != 3 || args->items[0]->kind != PKL_TENSOR) return fail(p, "malformed parameter%s", "");
      r = args->items[0];
      break;
    default: return fail(p, "a storage type is called%s", "");
  }
  if (!r) return p->e->code ? p->e->code : MSKX_EFORMAT;
  return push(p, r);
}

static int memo_put(parser *p, uint64_t idx, pkl_obj *o) {
  if (idx >= PKL_MAX_MEMO) return err_set(p->e, MSKX_ELIMIT, "%s: pickle memo index %llu above the limit %d", p->what,
                                          (unsigned long long)idx, PKL_MAX_MEMO);
  if (idx >= p->memo_cap) {
    size_t nc = p->memo_cap ? p->memo_cap : 64;
    while (nc <= idx) nc *= 2;
    pkl_obj **m = realloc(p->memo, nc * sizeof *m);
    if (!m) return err_set(p->e, MSKX_ENOMEM, "out of memory");
    memset(m + p->memo_cap, 0, (nc - p->memo_cap) * sizeof *m);
    p->memo = m;
    p->memo_cap = nc;
  }
  p->memo[idx] = o;
  if (idx >= p->memo_len) p->memo_len = idx + 1;
  return MSKX_OK;
}

static int memo_get(parser *p, uint64_t idx) {
  if (idx >= p->memo_len || !p->memo[idx]) return fail(p, "memo slot read before it was written%s", "");
  return push(p, p->memo[idx]);
}

/* One opcode; *done set at STOP. */
static int step(parser *p, int *done) {
  p->op_pos = p->pos;
  int rc = need(p, 1);
  if (rc) return rc;
  unsigned char op = p->buf[p->pos++];
  pkl_obj *a, *b, *c;
  size_t base = 0;
  char module[PKL_MAX_LINE], name[PKL_MAX_LINE];
  switch (op) {
    case 0x80: /* PROTO */
      if ((rc = need(p, 1))) return rc;
      if (p->buf[p->pos] < 2 || p->buf[p->pos] > 5) return fail(p, "pickle protocol below 2 or above 5%s", "");
      p->pos++;
      return MSKX_OK;
    case 0x95: /* FRAME: a length hint only */
      if ((rc = need(p, 8))) return rc;
      p->pos += 8;
      return MSKX_OK;
    case '.': *done = 1; return MSKX_OK;
    case '(':
      if (p->n_marks == PKL_MAX_MARKS) return err_set(p->e, MSKX_ELIMIT, "%s: pickle nested deeper than %d", p->what,
                                                      PKL_MAX_MARKS);
      p->marks[p->n_marks++] = p->sp;
      return MSKX_OK;
    case '0': return pop(p) ? MSKX_OK : p->e->code;
    case '1': return pop_mark(p, &base) ? p->e->code : (p->sp = base, MSKX_OK);
    case '2': return (a = top(p)) ? push(p, a) : p->e->code;
    case 'N': return push(p, new_obj(p, PKL_NONE));
    case 0x88:
    case 0x89:
      if ((a = new_obj(p, PKL_BOOL))) a->i = op == 0x88;
      return push(p, a);
    case 'J':
      if ((rc = need(p, 4))) return rc;
      return op_int(p, (int32_t)(uint32_t)rd_le(p, 4));
    case 'K':
      if ((rc = need(p, 1))) return rc;
      return op_int(p, (int64_t)rd_le(p, 1));
    case 'M':
      if ((rc = need(p, 2))) return rc;
      return op_int(p, (int64_t)rd_le(p, 2));
    case 0x8a: { /* LONG1: little-endian two's complement of n bytes */
      if ((rc = need(p, 1))) return rc;
      int n = p->buf[p->pos++];
      if (n > 8) return fail(p, "integer wider than 64 bits%s", "");
      if ((rc = need(p, (size_t)n))) return rc;
      uint64_t v = rd_le(p, n);
      if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~0ULL << (8 * n);
      return op_int(p, (int64_t)v);
    }
    case 'G': { /* BINFLOAT: big-endian double */
      if ((rc = need(p, 8))) return rc;
      uint64_t bits = 0;
      for (int i = 0; i < 8; i++) bits = bits << 8 | p->buf[p->pos++];
      if ((a = new_obj(p, PKL_FLOAT))) memcpy(&a->f, &bits, 8);
      return push(p, a);
    }
    case 'X':
    case 'B':
    case 'T':
      if ((rc = need(p, 4))) return rc;
      return op_string(p, rd_le(p, 4), op == 'B' ? PKL_BYTES : PKL_STR);
    case 0x8c:
    case 'C':
    case 'U':
      if ((rc = need(p, 1))) return rc;
      return op_string(p, rd_le(p, 1), op == 'C' ? PKL_BYTES : PKL_STR);
    case 0x8d:
    case 0x8e:
      if ((rc = need(p, 8))) return rc;
      return op_string(p, rd_le(p, 8), op == 0x8e ? PKL_BYTES : PKL_STR);
    case ')': return push(p, new_obj(p, PKL_TUPLE));
    case ']': return push(p, new_obj(p, PKL_LIST));
    case '}': return push(p, new_obj(p, PKL_DICT));
    case 't':
    case 'l':
      if (pop_mark(p, &base)) return p->e->code;
      return push(p, make_seq(p, op == 't' ? PKL_TUPLE : PKL_LIST, base));
    case 0x85:
    case 0x86:
    case 0x87: {
      size_t n = (size_t)(op - 0x84);
      if (p->sp < floor_sp(p) + n) return fail(p, "stack underflow%s", "");
      return push(p, make_seq(p, PKL_TUPLE, p->sp - n));
    }
    case 'a':
      if (!(b = pop(p)) || !(a = top(p))) return p->e->code;
      if (a->kind != PKL_LIST) return fail(p, "APPEND to a %s", pkl_kind_name(a->kind));
      return seq_append(p, a, b);
    case 'e':
      if (pop_mark(p, &base)) return p->e->code;
      if (base <= floor_sp(p)) return fail(p, "APPENDS without a list%s", "");
      a = p->stack[base - 1];
      if (a->kind != PKL_LIST) return fail(p, "APPENDS to a %s", pkl_kind_name(a->kind));
      for (size_t i = base; i < p->sp; i++)
        if ((rc = seq_append(p, a, p->stack[i]))) return rc;
      p->sp = base;
      return MSKX_OK;
    case 's':
      if (!(c = pop(p)) || !(b = pop(p)) || !(a = top(p))) return p->e->code;
      return dict_set(p, a, b, c);
    case 'u':
    case 'd':
      if (pop_mark(p, &base)) return p->e->code;
      if ((p->sp - base) % 2) return fail(p, "odd number of items for a dict%s", "");
      if (op == 'd') {
        if (!(a = new_obj(p, PKL_DICT))) return p->e->code;
      } else {
        if (base <= floor_sp(p)) return fail(p, "SETITEMS without a dict%s", "");
        a = p->stack[base - 1];
      }
      for (size_t i = base; i < p->sp; i += 2)
        if ((rc = dict_set(p, a, p->stack[i], p->stack[i + 1]))) return rc;
      p->sp = base;
      return op == 'd' ? push(p, a) : MSKX_OK;
    case 'q':
      if ((rc = need(p, 1))) return rc;
      return (a = top(p)) ? memo_put(p, rd_le(p, 1), a) : p->e->code;
    case 'r':
      if ((rc = need(p, 4))) return rc;
      return (a = top(p)) ? memo_put(p, rd_le(p, 4), a) : p->e->code;
    case 0x94: return (a = top(p)) ? memo_put(p, p->memo_len, a) : p->e->code;
    case 'h':
      if ((rc = need(p, 1))) return rc;
      return memo_get(p, rd_le(p, 1));
    case 'j':
      if ((rc = need(p, 4))) return rc;
      return memo_get(p, rd_le(p, 4));
    case 'c':
      if ((rc = read_line(p, module)) || (rc = read_line(p, name))) return rc;
      return op_global(p, module, name);
    case 0x93: /* STACK_GLOBAL */
      if (!(b = pop(p)) || !(a = pop(p))) return p->e->code;
      if (a->kind != PKL_STR || b->kind != PKL_STR || a->len >= PKL_MAX_LINE || b->len >= PKL_MAX_LINE)
        return fail(p, "STACK_GLOBAL needs two short strings%s", "");
      return op_global(p, a->s, b->s);
    case 'R': return op_reduce(p);
    case 0x81: /* NEWOBJ: only OrderedDict.__new__(OrderedDict) */
      if (!(b = pop(p)) || !(a = pop(p))) return p->e->code;
      if (a->kind != PKL_GLOBAL || a->i != G_ORDERED_DICT || b->kind != PKL_TUPLE || b->len)
        return fail(p, "NEWOBJ of anything but an empty OrderedDict%s", "");
      return push(p, new_obj(p, PKL_DICT));
    case 'b': /* BUILD: an OrderedDict's instance state (its _metadata) is ignored */
      if (!(b = pop(p)) || !(a = top(p))) return p->e->code;
      if (a->kind != PKL_DICT) return fail(p, "BUILD on a %s", pkl_kind_name(a->kind));
      return MSKX_OK;
    case 'Q': return op_persid(p);
    default: {
      char hex[8];
      snprintf(hex, sizeof hex, "0x%02x", op);
      return fail(p, "pickle opcode %s is not one a state dict uses: refused", hex);
    }
  }
}

int pkl_parse(const unsigned char *buf, size_t len, const char *what, pkl_doc **out, mskx_err *e) {
  *out = NULL;
  parser p = {.buf = buf, .len = len, .what = what, .e = e};
  p.doc = calloc(1, sizeof *p.doc);
  if (!p.doc) return err_set(e, MSKX_ENOMEM, "out of memory");
  int done = 0, rc = MSKX_OK;
  while (!rc && !done) rc = step(&p, &done);
  if (!rc && (p.sp != 1 || p.n_marks))
    rc = err_set(e, MSKX_EFORMAT, "%s: pickle ends with %zu values on the stack, not 1", what, p.sp);
  if (!rc) p.doc->root = p.stack[0];
  free(p.stack);
  free(p.memo);
  if (rc) {
    pkl_free(p.doc);
    return rc;
  }
  *out = p.doc;
  return MSKX_OK;
}

void pkl_free(pkl_doc *d) {
  if (!d) return;
  for (pkl_obj *o = d->objects, *n; o; o = n) {
    n = o->next_alloc;
    if (o->kind != PKL_STORAGE) free(o->s);
    free(o->items);
    free(o->vals);
    free(o);
  }
  free(d);
}

pkl_obj *pkl_dict_get(const pkl_obj *d, const char *key) {
  if (!d || d->kind != PKL_DICT) return NULL;
  for (size_t i = d->len; i-- > 0;)
    if (d->items[i]->kind == PKL_STR && !strcmp(d->items[i]->s, key)) return d->vals[i];
  return NULL;
}
