/* Keras 2.x weight files (HDF5), read with libhdf5's C API: the layout
 * model.save writes (model_weights/<layer>/<weight name>, the root attribute
 * model_config) and the one save_weights writes (<layer>/<weight name> at the
 * root). Layers come from the layer_names attribute and each layer's weights
 * from its weight_names attribute (both possibly split into name0, name1, ...
 * as Keras does above HDF5's 64 KiB header limit). Tensors come out as
 * float32 under their Keras weight names ("conv1/conv/kernel:0") in Keras's
 * layouts (HWIO kernels, (in, out) dense kernels); the model_config JSON, if
 * any, is the metadata entry "model_config". Names are mapped elsewhere
 * (models/import.h). */
#ifndef MSKX_IO_KERAS_H5_H
#define MSKX_IO_KERAS_H5_H
#include <stddef.h>
#include "io/safetensors.h"
#include "mskx.h"

#define KH5_MAX_LAYERS 100000
#define KH5_MAX_WEIGHTS 100000           /* weights in all layers */
#define KH5_MAX_NAME 1024                /* bytes of a layer or weight name */
#define KH5_MAX_NUMEL ((int64_t)1 << 28) /* elements of one weight */
#define KH5_MAX_TOTAL ((int64_t)1 << 30) /* elements of all weights */
#define KH5_MAX_CONFIG ((size_t)16 << 20)
/* libhdf5 allocates whole chunks (sized by the file) while reading, whatever
 * the dataset's own size; weights are at most 1 GiB, chunks stay below this. */
#define KH5_MAX_CHUNK_BYTES ((uint64_t)64 << 20)

/* HDF5's signature at offset 0 (files with a user block are not recognised). */
int kh5_sniff(const unsigned char *head, size_t n);

int kh5_read(const char *path, st_file **out, mskx_err *e);
/* Same from memory (an HDF5 file image); what names the source in messages. */
int kh5_read_mem(const unsigned char *buf, size_t len, const char *what, st_file **out, mskx_err *e);

#endif
