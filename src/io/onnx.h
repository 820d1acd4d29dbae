/* Writing ONNX models: a small protocol-buffers encoder (varints, fixed32 and
 * length-delimited fields) and builders for the ONNX messages mskx needs
 * (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto,
 * ValueInfoProto). Field numbers are those of onnx/onnx.proto; the tests read
 * every file back with the onnx package's own parser and checker. */
#ifndef MSKX_IO_ONNX_H
#define MSKX_IO_ONNX_H
#include <stddef.h>
#include <stdint.h>
#include "mskx.h"

/* A growable byte buffer; an allocation failure sets oom and later writes
 * are dropped, so callers check once at the end. */
typedef struct pb_buf {
  uint8_t *p;
  size_t len, cap;
  int oom;
} pb_buf;

void pb_free(pb_buf *b);
void pb_varint(pb_buf *b, uint64_t v);
void pb_int(pb_buf *b, int field, int64_t v);                        /* wire type 0 */
void pb_float(pb_buf *b, int field, float v);                        /* wire type 5 */
void pb_bytes(pb_buf *b, int field, const void *data, size_t len);   /* wire type 2 */
void pb_str(pb_buf *b, int field, const char *s);
/* Embeds sub as a length-delimited message and frees it. */
void pb_msg(pb_buf *b, int field, pb_buf *sub);

/* ONNX TensorProto.DataType FLOAT. */
#define ONNX_FLOAT 1

/* A graph under construction: nodes, initializers, inputs and outputs are
 * appended to one GraphProto buffer. Value names are made unique by
 * onnx_name (a prefix plus a counter). */
typedef struct onnx_graph {
  pb_buf g;
  int counter;
} onnx_graph;

/* A node attribute: int (INT), ints (INTS, n values) or f (FLOAT). */
typedef struct onnx_attr {
  const char *name;
  int kind;               /* ONNX_ATTR_INT, ONNX_ATTR_INTS or ONNX_ATTR_FLOAT */
  int64_t i;
  const int64_t *ints;
  int n;
  float f;
} onnx_attr;
enum { ONNX_ATTR_FLOAT = 1, ONNX_ATTR_INT = 2, ONNX_ATTR_INTS = 7 };

/* Writes "<prefix>_<counter>" into out (n bytes) and returns out. */
char *onnx_name(onnx_graph *g, const char *prefix, char *out, size_t n);
void onnx_node(onnx_graph *g, const char *op, const char *const *in, int n_in, const char *out, const onnx_attr *attrs,
               int n_attrs);
/* A float initializer (raw_data, little-endian). */
void onnx_initializer(onnx_graph *g, const char *name, const int64_t *dims, int ndim, const float *data);
/* A graph input (is_output 0) or output (1) of float tensors; dims[i] < 0 is
 * the symbolic dimension dim_param. */
void onnx_value_info(onnx_graph *g, int is_output, const char *name, const int64_t *dims, int ndim,
                     const char *dim_param);

typedef struct onnx_kv {
  const char *key, *value;
} onnx_kv;

/* Wraps the graph into a ModelProto (ir_version for the opset, producer
 * mskx, default-domain opset, metadata_props) and writes it atomically to
 * path. The graph is consumed. */
int onnx_write_model(onnx_graph *g, const char *graph_name, int opset, const onnx_kv *meta, int n_meta,
                     const char *path, mskx_err *e);

/* The IR version that goes with an opset (onnx's own version table). */
int onnx_ir_version(int opset);

#endif
