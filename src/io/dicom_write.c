/* DICOM output (see dicom.h): UIDs under the 2.25 root, the synthetic
 * radiographs of `mskx synth --format dicom`, and Structured Reports; the
 * data sets are encoded by GDCM behind dicom_codec.h / dicom_sr_encode. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/error.h"
#include "core/rng.h"
#include "core/util.h"
#include "io/dicom.h"
#include "io/dicom_codec.h"

/* ---------------------------------------------------------------- writing */

void dicom_make_uid(uint64_t a, uint64_t b, char *out) {
  /* Two 18-digit halves of a mixed 128-bit value: a decimal integer below 10^36 < 2^128. */
  rng r = rng_for(0x6d736b782d756964ull, a, b); /* "mskx-uid" */
  uint64_t hi = rng_u64(&r) % 900000000000000000ull + 100000000000000000ull;
  uint64_t lo = rng_u64(&r) % 1000000000000000000ull;
  snprintf(out, DICOM_UI_MAX + 1, "2.25.%llu%018llu", (unsigned long long)hi, (unsigned long long)lo);
}

/* The synthetic variants. Windows are exact inverses of the stored mapping:
 * a LINEAR window of width 4081 centred 2040.5 above the value of grey 0
 * maps 16 units per grey level back to 0..255. */
typedef struct synth_variant {
  const char *ts, *photometric, *function;
  int bits_allocated, bits_stored;
  int mul, add;              /* stored = grey * mul + add (MONOCHROME1: (255 - grey)) */
  double slope, intercept;
  const char *center, *width; /* NULL: no window (auto) */
} synth_variant;

static const synth_variant synth_variants[] = {
    {"1.2.840.10008.1.2.1", "MONOCHROME2", NULL, 16, 12, 16, 8, 1, 0, "2048.5", "4081"},
    {"1.2.840.10008.1.2.4.70", "MONOCHROME1", "LINEAR_EXACT", 16, 16, 257, 0, 1, 0, "32767.5", "65535"},
    {"1.2.840.10008.1.2.4.80", "MONOCHROME2", NULL, 16, 12, 8, 100, 2, -1024, "1216.5", "4081"},
    {"1.2.840.10008.1.2.4.90", "MONOCHROME2", NULL, 16, 12, 16, 8, 1, 0, "2048.5", "4081"},
    {"1.2.840.10008.1.2.5", "MONOCHROME1", NULL, 16, 12, 16, 8, 1, 0, "2048.5", "4081"},
    {"1.2.840.10008.1.2", "MONOCHROME2", NULL, 8, 8, 1, 0, 1, 0, NULL, NULL},
};
#define N_SYNTH_VARIANTS ((int)(sizeof synth_variants / sizeof synth_variants[0]))

int dicom_write_synthetic(const char *path, const uint8_t *px, int w, int h, int channels,
                          const dicom_synth_info *info, mskx_err *e) {
  const synth_variant *v = &synth_variants[info->variant % N_SYNTH_VARIANTS];
  size_t n = (size_t)w * (size_t)h;
  int rgb = channels == 3;
  int bytes = rgb ? 1 : v->bits_allocated / 8;
  uint8_t *buf = malloc(n * (size_t)(rgb ? 3 : bytes));
  if (!buf) return err_set(e, MSKX_ENOMEM, "out of memory");
  int mono1 = !rgb && !strcmp(v->photometric, "MONOCHROME1");
  if (rgb) memcpy(buf, px, n * 3);
  for (size_t i = 0; !rgb && i < n; i++) {
    unsigned g = mono1 ? 255u - px[i] : px[i];
    unsigned sv = g * (unsigned)v->mul + (unsigned)v->add;
    if (bytes == 1) buf[i] = (uint8_t)sv;
    else buf[2 * i] = (uint8_t)(sv & 0xFF), buf[2 * i + 1] = (uint8_t)(sv >> 8);
  }
  char study[DICOM_UI_MAX + 1], series[DICOM_UI_MAX + 1], sop[DICOM_UI_MAX + 1], sn[16], in[16];
  dicom_make_uid(info->study_key, 1, study);
  dicom_make_uid(info->study_key, 1000 + (uint64_t)info->series_number, series);
  dicom_make_uid(info->image_key, 2, sop);
  snprintf(sn, sizeof sn, "%d", info->series_number);
  snprintf(in, sizeof in, "%d", info->instance_number);
  dicom_attr attrs[24];
  int k = 0;
#define ATTR(g, el, vr, val) attrs[k++] = (dicom_attr){g, el, vr, val}
  ATTR(0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.1"); /* Computed Radiography Image Storage */
  ATTR(0x0008, 0x0018, "UI", sop);
  ATTR(0x0008, 0x0020, "DA", info->study_date);
  ATTR(0x0008, 0x0030, "TM", "120000");
  ATTR(0x0008, 0x0060, "CS", "CR");
  ATTR(0x0008, 0x0070, "LO", "mskx synth (synthetic phantom, no clinical meaning)");
  ATTR(0x0008, 0x1030, "LO", "SYNTHETIC PHANTOM");
  ATTR(0x0010, 0x0010, "PN", "Synthetic^Phantom");
  ATTR(0x0010, 0x0020, "LO", info->patient_id);
  ATTR(0x0018, 0x0015, "CS", info->body_part);
  ATTR(0x0020, 0x000D, "UI", study);
  ATTR(0x0020, 0x000E, "UI", series);
  ATTR(0x0020, 0x0011, "IS", sn);
  ATTR(0x0020, 0x0013, "IS", in);
  if (!rgb && v->center) {
    ATTR(0x0028, 0x1050, "DS", v->center);
    ATTR(0x0028, 0x1051, "DS", v->width);
    if (v->function) ATTR(0x0028, 0x1056, "CS", v->function);
  }
#undef ATTR
  /* RGB stays uncompressed: GDCM's RLE encoder asserts (aborts) on an odd
   * number of 8-bit samples, which odd-sized RGB phantoms have. */
  dicom_write_in wi = {rgb ? "1.2.840.10008.1.2.1" : v->ts, rgb ? "RGB" : v->photometric, h, w, rgb ? 3 : 1, rgb ? 8 : v->bits_allocated,
                       rgb ? 8 : v->bits_stored, 0, rgb ? 1 : v->slope, rgb ? 0 : v->intercept, buf, k, attrs};
  uint8_t *file = NULL;
  size_t len = 0;
  int rc = dicom_codec_write_image(&wi, &file, &len, e);
  free(buf);
  if (!rc) rc = file_write_atomic(path, file, len, e);
  free(file);
  if (rc) err_prefix(e, "%s", path);
  return rc;
}

/* ---------------------------------------------------------------- SR */

static void utc_now(char out[15]) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 15, "%Y%m%d%H%M%S", &tm);
}

/* The SR of the DICOM images among bufs; its SOP Instance UID goes to uid.
 * The report's UIDs derive from the source instances and the result, so the
 * same prediction written twice is the same document. */
static int sr_build(const uint8_t *const *bufs, const size_t *lens, int n, const dicom_sr_in *result, uint8_t **out,
                    size_t *len, char *uid, mskx_err *e) {
  dicom_meta *src = calloc((size_t)(n > 0 ? n : 1), sizeof *src);
  if (!src) return err_set(e, MSKX_ENOMEM, "out of memory");
  int k = 0, rc = MSKX_OK;
  for (int i = 0; !rc && i < n; i++)
    if (dicom_is_dicom(bufs[i], lens[i]) && !(rc = dicom_scan_meta(bufs[i], lens[i], "image", &src[k], e))) k++;
  if (!rc && k == 0) rc = err_set(e, MSKX_EINVAL, "a Structured Report needs DICOM images (the study has none)");
  if (!rc) {
    char now[15];
    utc_now(now);
    dicom_sr_in in = *result;
    in.src = src;
    in.n_src = k;
    if (!in.datetime) in.datetime = now;
    uint64_t h = FNV1A_INIT; /* over the sources and the result */
    for (int i = 0; i < k; i++) h = fnv1a_str(h, src[i].sop_instance_uid);
    uint64_t r = (uint64_t)llround(in.probability * 1e9) ^ (uint64_t)llround(in.threshold * 1e9) << 1;
    char series[DICOM_UI_MAX + 1], sop[DICOM_UI_MAX + 1];
    dicom_make_uid(h, r ^ 0x53455249ull, series);
    dicom_make_uid(h, r ^ 0x534f5049ull, sop);
    in.series_uid = series;
    in.sop_uid = sop;
    if (uid) snprintf(uid, DICOM_UI_MAX + 1, "%s", sop);
    rc = dicom_sr_encode(&in, out, len, e);
  }
  free(src);
  return rc;
}

int dicom_sr_from_encoded(const uint8_t *const *bufs, const size_t *lens, int n, const dicom_sr_in *result,
                          uint8_t **out, size_t *len, mskx_err *e) {
  return sr_build(bufs, lens, n, result, out, len, NULL, e);
}

int dicom_sr_write_files(const char *dir, const char *const *paths, int n, const dicom_sr_in *result, char *out_path,
                         size_t out_n, mskx_err *e) {
  uint8_t **bufs = calloc((size_t)n, sizeof *bufs);
  size_t *lens = calloc((size_t)n, sizeof *lens);
  int rc = bufs && lens ? MSKX_OK : err_set(e, MSKX_ENOMEM, "out of memory");
  for (int i = 0; !rc && i < n; i++) rc = file_read_all(paths[i], IMAGE_MAX_FILE_BYTES, &bufs[i], &lens[i], e);
  uint8_t *sr = NULL;
  size_t len = 0;
  char uid[DICOM_UI_MAX + 1] = "", name[DICOM_UI_MAX + 16];
  if (!rc) rc = sr_build((const uint8_t *const *)bufs, lens, n, result, &sr, &len, uid, e);
  for (int i = 0; bufs && i < n; i++) free(bufs[i]);
  free(bufs);
  free(lens);
  snprintf(name, sizeof name, "SR_%s.dcm", uid[0] ? uid : "unknown");
  if (!rc) rc = path_join(out_path, out_n, dir, name, e);
  if (!rc) rc = file_write_atomic(out_path, sr, len, e);
  free(sr);
  return rc;
}
