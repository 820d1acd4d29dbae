/* ONNX writing (see onnx.h). Field numbers from onnx/onnx.proto:
 *   ModelProto: ir_version 1, producer_name 2, producer_version 3, doc_string 6,
 *     graph 7, opset_import 8, metadata_props 14
 *   OperatorSetIdProto: domain 1, version 2; StringStringEntryProto: key 1, value 2
 *   GraphProto: node 1, name 2, initializer 5, input 11, output 12
 *   NodeProto: input 1, output 2, name 3, op_type 4, attribute 5
 *   AttributeProto: name 1, f 2, i 3, ints 8, type 20
 *   TensorProto: dims 1, data_type 2, name 8, raw_data 9
 *   ValueInfoProto: name 1, type 2; TypeProto: tensor_type 1;
 *   TypeProto.Tensor: elem_type 1, shape 2; TensorShapeProto: dim 1;
 *   Dimension: dim_value 1, dim_param 2 */
#include "io/onnx.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"

enum { WIRE_VARINT = 0, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

static void put(pb_buf *b, const void *data, size_t n) {
  if (b->oom) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
}

void pb_free(pb_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

void pb_varint(pb_buf *b, uint64_t v) {
  uint8_t tmp[10];
  int n = 0;
  do {
    tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  put(b, tmp, (size_t)n);
}

static void tag(pb_buf *b, int field, int wire) { pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wire); }

void pb_int(pb_buf *b, int field, int64_t v) {
  tag(b, field, WIRE_VARINT);
  pb_varint(b, (uint64_t)v); /* negative int64: ten bytes of two's complement, as protobuf does */
}

static void le32(uint8_t *o, uint32_t u) {
  for (int k = 0; k < 4; k++) o[k] = (uint8_t)(u >> (8 * k));
}

void pb_float(pb_buf *b, int field, float v) {
  uint32_t u;
  uint8_t o[4];
  memcpy(&u, &v, 4);
  le32(o, u);
  tag(b, field, WIRE_FIXED32);
  put(b, o, 4);
}

void pb_bytes(pb_buf *b, int field, const void *data, size_t len) {
  tag(b, field, WIRE_LEN);
  pb_varint(b, len);
  put(b, data, len);
}

void pb_str(pb_buf *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }

void pb_msg(pb_buf *b, int field, pb_buf *sub) {
  if (sub->oom) b->oom = 1;
  pb_bytes(b, field, sub->p ? sub->p : (const uint8_t *)"", sub->len);
  pb_free(sub);
}

char *onnx_name(onnx_graph *g, const char *prefix, char *out, size_t n) {
  snprintf(out, n, "%s_%d", prefix, ++g->counter);
  return out;
}

void onnx_node(onnx_graph *g, const char *op, const char *const *in, int n_in, const char *out, const onnx_attr *attrs,
               int n_attrs) {
  pb_buf nd = {0};
  for (int i = 0; i < n_in; i++) pb_str(&nd, 1, in[i]);
  pb_str(&nd, 2, out);
  pb_str(&nd, 3, out); /* node named after its output: unique, and easy to find in viewers */
  pb_str(&nd, 4, op);
  for (int a = 0; a < n_attrs; a++) {
    pb_buf at = {0};
    pb_str(&at, 1, attrs[a].name);
    pb_int(&at, 20, attrs[a].kind);
    if (attrs[a].kind == ONNX_ATTR_INT) pb_int(&at, 3, attrs[a].i);
    else if (attrs[a].kind == ONNX_ATTR_FLOAT) pb_float(&at, 2, attrs[a].f);
    else
      for (int k = 0; k < attrs[a].n; k++) pb_int(&at, 8, attrs[a].ints[k]);
    pb_msg(&nd, 5, &at);
  }
  pb_msg(&g->g, 1, &nd);
}

void onnx_initializer(onnx_graph *g, const char *name, const int64_t *dims, int ndim, const float *data) {
  pb_buf t = {0};
  size_t numel = 1;
  for (int d = 0; d < ndim; d++) {
    pb_int(&t, 1, dims[d]);
    numel *= (size_t)dims[d];
  }
  pb_int(&t, 2, ONNX_FLOAT);
  pb_str(&t, 8, name);
  tag(&t, 9, WIRE_LEN);
  pb_varint(&t, numel * 4);
  for (size_t i = 0; i < numel; i++) {
    uint32_t u;
    uint8_t o[4];
    memcpy(&u, &data[i], 4);
    le32(o, u);
    put(&t, o, 4);
  }
  pb_msg(&g->g, 5, &t);
}

void onnx_value_info(onnx_graph *g, int is_output, const char *name, const int64_t *dims, int ndim,
                     const char *dim_param) {
  pb_buf shape = {0}, tensor = {0}, type = {0}, vi = {0};
  for (int d = 0; d < ndim; d++) {
    pb_buf dim = {0};
    if (dims[d] < 0) pb_str(&dim, 2, dim_param);
    else pb_int(&dim, 1, dims[d]);
    pb_msg(&shape, 1, &dim);
  }
  pb_int(&tensor, 1, ONNX_FLOAT);
  pb_msg(&tensor, 2, &shape);
  pb_msg(&type, 1, &tensor);
  pb_str(&vi, 1, name);
  pb_msg(&vi, 2, &type);
  pb_msg(&g->g, is_output ? 12 : 11, &vi);
}

int onnx_ir_version(int opset) {
  /* onnx 1.8-1.9: IR 7 with opsets 13-14; 1.10-1.13: IR 8 with 15-18;
   * 1.14-1.15: IR 9 with 19-20; 1.16: IR 10 with 21. */
  return opset <= 14 ? 7 : opset <= 18 ? 8 : opset <= 20 ? 9 : 10;
}

int onnx_write_model(onnx_graph *g, const char *graph_name, int opset, const onnx_kv *meta, int n_meta,
                     const char *path, mskx_err *e) {
  pb_buf m = {0}, ops = {0};
  pb_str(&g->g, 2, graph_name);
  pb_int(&m, 1, onnx_ir_version(opset));
  pb_str(&m, 2, "mskx");
  pb_str(&m, 3, MSKX_VERSION);
  pb_str(&ops, 1, "");
  pb_int(&ops, 2, opset);
  pb_msg(&m, 8, &ops);
  for (int i = 0; i < n_meta; i++) {
    pb_buf kv = {0};
    pb_str(&kv, 1, meta[i].key);
    pb_str(&kv, 2, meta[i].value);
    pb_msg(&m, 14, &kv);
  }
  pb_msg(&m, 7, &g->g);
  int rc = m.oom ? err_set(e, MSKX_ENOMEM, "%s: out of memory while encoding the ONNX model", path)
                 : file_write_atomic(path, m.p, m.len, e);
  pb_free(&m);
  return rc;
}
