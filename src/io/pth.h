/* PyTorch checkpoints: the zip format torch.save has written since 1.6
 * (<dir>/data.pkl, <dir>/data/<key> storages, <dir>/version), read with
 * libzip (CRCs checked) and the restricted unpickler of torch_pickle.h.
 * The state dict is the top-level dict, or its "state_dict", "model" or
 * "model_state_dict" entry; every tensor comes out as float32 in C order
 * under its key (storage dtypes f32/f16/bf16/f64/i64; strides and storage
 * offsets honoured). Names are not changed here (see models/import.h). */
#ifndef MSKX_IO_PTH_H
#define MSKX_IO_PTH_H
#include <stddef.h>
#include "io/safetensors.h"
#include "mskx.h"

#define PTH_MAX_FILE_BYTES ((size_t)8 << 30)
#define PTH_MAX_PICKLE_BYTES ((size_t)64 << 20)
#define PTH_MAX_TENSORS 100000
#define PTH_MAX_NUMEL ((int64_t)1 << 31)   /* elements of one tensor */

/* The first bytes of a zip archive (any zip; pth_read says if it is not torch's). */
int pth_sniff(const unsigned char *head, size_t n);

int pth_read(const char *path, st_file **out, mskx_err *e);
/* Same from memory; what names the source in messages. */
int pth_read_mem(const unsigned char *buf, size_t len, const char *what, st_file **out, mskx_err *e);

#endif
