/* The image files of a study: which file names are images, their natural
 * order, and the listing of a study given as one image file or a folder (what
 * `mskx predict` and the batched predict engine take as a study). */
#ifndef MSKX_DATA_STUDY_FOLDER_H
#define MSKX_DATA_STUDY_FOLDER_H
#include <stdbool.h>
#include "mskx.h"

/* Longest path a listing builds (folder + '/' + file name). */
#define STUDY_PATH_MAX 4096

/* .png/.jpg/.jpeg/.dcm/.dicom, case-insensitive, not hidden. */
bool ds_is_image_name(const char *name);
/* An image by name, or a file without an extension that starts like DICOM
 * (the "DICM" preamble: PACS exports often have no extension). */
bool ds_is_image_file(const char *dir, const char *name);
/* strcmp that orders digit runs by value: image2 < image10, patient9 < patient10. */
int ds_natural_cmp(const char *a, const char *b);

/* The images of one study: path itself when it is a file, else the folder's
 * image files (ds_is_image_file; sub-folders and hidden files skipped) as
 * "path/name", in natural order. *out (n strings, owned by the caller: free
 * with study_folder_list_free) is NULL on failure. Errors: path missing
 * (MSKX_EIO), a folder without images (MSKX_EINVAL), out of memory. */
int study_folder_list(const char *path, char ***out, int *n, mskx_err *e);
void study_folder_list_free(char **paths, int n);

#endif
