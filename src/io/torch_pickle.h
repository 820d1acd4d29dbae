/* A restricted reader of the pickles torch.save writes for state dicts
 * (archive/data.pkl of the zip format). It knows the opcodes of pickle
 * protocols 2-5 that build plain data (ints, floats, strings, tuples, lists,
 * dicts) and exactly the Python globals a state dict needs:
 * collections.OrderedDict, torch._utils._rebuild_tensor_v2 /
 * _rebuild_tensor / _rebuild_parameter and the storage types
 * torch.{Float,Half,BFloat16,Double,Long}Storage (through persistent ids).
 * Any other global is refused with its name, so a checkpoint can never run
 * code: nothing is ever called, the "calls" above are interpreted here.
 * Every count, length, index and depth is bounded (PKL_MAX_*). */
#ifndef MSKX_IO_TORCH_PICKLE_H
#define MSKX_IO_TORCH_PICKLE_H
#include <stddef.h>
#include <stdint.h>
#include "core/tensor.h"
#include "mskx.h"

#define PKL_MAX_OBJECTS (1 << 20)   /* values built by one pickle (a DenseNet-201 state dict: ~15,000) */
#define PKL_MAX_STACK (1 << 20)     /* entries on the stack at once */
#define PKL_MAX_MARKS 256           /* nested MARKs (container depth) */
#define PKL_MAX_MEMO (1 << 22)      /* memo slots */
#define PKL_MAX_STRING (1 << 20)    /* bytes of one string */
#define PKL_MAX_LINE 256            /* GLOBAL's module/name lines */
#define PKL_MAX_DIMS TENSOR_MAX_DIMS

typedef enum pkl_kind {
  PKL_NONE, PKL_BOOL, PKL_INT, PKL_FLOAT, PKL_STR, PKL_BYTES, PKL_TUPLE, PKL_LIST, PKL_DICT,
  PKL_GLOBAL,    /* one of the allowed globals (not yet applied) */
  PKL_STORAGE,   /* a persistent-id storage reference */
  PKL_TENSOR
} pkl_kind;

typedef struct pkl_obj pkl_obj;
struct pkl_obj {
  pkl_kind kind;
  int64_t i;          /* INT, BOOL; GLOBAL: which (pkl_global) */
  double f;
  char *s;            /* STR, BYTES (NUL-terminated too); STORAGE: key */
  size_t len;         /* STR, BYTES: bytes; TUPLE, LIST, DICT: items */
  size_t cap;
  pkl_obj **items;    /* TUPLE, LIST; DICT: keys */
  pkl_obj **vals;     /* DICT */
  /* STORAGE */
  elem_dtype dtype;
  int64_t numel;
  /* TENSOR */
  pkl_obj *storage;
  int64_t offset;
  int ndim;
  int64_t shape[PKL_MAX_DIMS], stride[PKL_MAX_DIMS];
  pkl_obj *next_alloc; /* the arena's list */
};

typedef struct pkl_doc {
  pkl_obj *root;
  pkl_obj *objects;   /* every object, for freeing */
  size_t n_objects;
} pkl_doc;

/* Parses buf (len bytes); what names the source in messages. */
int pkl_parse(const unsigned char *buf, size_t len, const char *what, pkl_doc **out, mskx_err *e);
void pkl_free(pkl_doc *d);
/* Dict lookup by string key; NULL if absent or d is not a dict. */
pkl_obj *pkl_dict_get(const pkl_obj *d, const char *key);
const char *pkl_kind_name(pkl_kind k);

#endif
