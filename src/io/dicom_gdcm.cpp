// The only C++ in mskx (see dicom_codec.h): GDCM decodes encapsulated pixel
// data that src/io/dicom_scan.c has already located and size-checked. GDCM
// never sees the rest of the file, never prints (its trace output is off)
// and never throws past this file.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <jpeglib.h>
#include <gdcmDataElement.h>
#include <gdcmFragment.h>
#include <gdcmImage.h>
#include <gdcmImageChangeTransferSyntax.h>
#include <gdcmImageWriter.h>
#include <sstream>
#include <string>
#include <gdcmJPEGCodec.h>
#include <gdcmPhotometricInterpretation.h>
#include <gdcmPixelFormat.h>
#include <gdcmSequenceOfFragments.h>
#include <gdcmSmartPointer.h>
#include <gdcmTrace.h>
#include <gdcmTransferSyntax.h>
#include <gdcmItem.h>
#include <gdcmSequenceOfItems.h>
#include <gdcmWriter.h>
#include "io/dicom_codec.h"
extern "C" {
#include "core/error.h"
#include "io/dicom.h"
}

// GDCM's bundled libjpeg builds (8, 12 and 16 bits) report through libjpeg's
// standard error manager, whose output_message writes to stderr, and decode
// corrupt data with only a warning. GDCM obtains that manager from these
// three exported functions; defining them here (the executable's symbols
// come first in dynamic lookup) gives it one that never prints and that
// records warnings, so corrupt JPEG data becomes an error instead of a
// silently grey image. The struct is the classic libjpeg 6b one, the same
// in every build.
namespace {
thread_local bool jpeg_warned;
void jpeg_quiet_output(j_common_ptr) {}
void jpeg_quiet_emit(j_common_ptr c, int level) {
  if (level < 0) {
    jpeg_warned = true;
    c->err->num_warnings++;
  }
}
void jpeg_quiet_format(j_common_ptr c, char *buf) { std::snprintf(buf, JMSG_LENGTH_MAX, "JPEG error %d", c->err->msg_code); }
void jpeg_quiet_reset(j_common_ptr c) {
  c->err->num_warnings = 0;
  c->err->msg_code = 0;
}
// Used only until GDCM installs its own error_exit (it always does, before
// any call that can fail); returning would be undefined, so it cannot be
// reached through GDCM.
void jpeg_quiet_exit(j_common_ptr c) { jpeg_quiet_emit(c, -1); }
struct jpeg_error_mgr *quiet_std_error(struct jpeg_error_mgr *err) {
  std::memset(err, 0, sizeof *err);
  err->error_exit = jpeg_quiet_exit;
  err->emit_message = jpeg_quiet_emit;
  err->output_message = jpeg_quiet_output;
  err->format_message = jpeg_quiet_format;
  err->reset_error_mgr = jpeg_quiet_reset;
  return err;
}
}  // namespace
// These replace GDCM's own by symbol interposition, so they must be visible
// in the dynamic symbol table (libmskx.so exports them: scripts/libmskx.map).
#define MSKX_INTERPOSE extern "C" __attribute__((visibility("default")))
MSKX_INTERPOSE struct jpeg_error_mgr *gdcmjpeg8_jpeg_std_error(struct jpeg_error_mgr *err) { return quiet_std_error(err); }
MSKX_INTERPOSE struct jpeg_error_mgr *gdcmjpeg12_jpeg_std_error(struct jpeg_error_mgr *err) { return quiet_std_error(err); }
MSKX_INTERPOSE struct jpeg_error_mgr *gdcmjpeg16_jpeg_std_error(struct jpeg_error_mgr *err) { return quiet_std_error(err); }

namespace {

// GDCM picks its 8-, 12- or 16-bit JPEG decoder from Bits Allocated and,
// when the stream's precision differs (12-bit JPEG in 16 bits allocated,
// the usual case), first fails with a libjpeg message printed to stderr and
// then retries. Choosing the decoder from the frame header's precision,
// which dicom.c has read, avoids both.
struct jpeg_codec : gdcm::JPEGCodec {
  void set_precision(int bits) { SetBitSample(bits); }
};

// What Bitmap::GetBuffer does for JPEG (gdcmBitmap.cxx TryJPEGCodec), with
// the decoder chosen as above.
bool decode_jpeg(const gdcm::Image &img, const gdcm::DataElement &pixel, int precision, int frames, char *buf,
                 unsigned long need) {
  jpeg_codec codec;
  // Three dimensions always: ImageCodec reads dims[2] (the frame count) even
  // for a 2-D image, and Bitmap's 2-D dimension list has only two entries.
  const unsigned int dims[3] = {img.GetDimension(0), img.GetDimension(1), (unsigned)frames};
  codec.SetNumberOfDimensions(img.GetNumberOfDimensions());
  codec.SetDimensions(dims);
  codec.SetPlanarConfiguration(img.GetPlanarConfiguration());
  codec.SetPhotometricInterpretation(img.GetPhotometricInterpretation());
  codec.SetPixelFormat(img.GetPixelFormat());
  if (precision > 0 && precision <= 16) codec.set_precision(precision);
  codec.SetNeedOverlayCleanup(false);  // dicom.c masks to Bits Stored itself
  gdcm::DataElement out;
  if (!codec.Decode(pixel, out)) return false;
  const gdcm::ByteValue *bv = out.GetByteValue();
  if (!bv || bv->GetLength() < need) return false;
  std::memcpy(buf, bv->GetPointer(), need);
  return true;
}

// GDCM's trace flags are process-wide: switched off once (call_once, as
// decoders run on several threads), which changes nothing outside GDCM.
std::once_flag quiet_once;
void quiet() {
  std::call_once(quiet_once, [] {
    gdcm::Trace::SetDebug(false);
    gdcm::Trace::SetWarning(false);
    gdcm::Trace::SetError(false);
  });
}

int decode(const dicom_codec_in *in, const char *name, dicom_codec_out *out, mskx_err *e) {
  gdcm::TransferSyntax ts = gdcm::TransferSyntax::GetTSType(in->ts_uid);
  if (ts == gdcm::TransferSyntax::TS_END)
    return err_set(e, MSKX_EUNSUPPORTED, "%s: transfer syntax %s is not supported", name, in->ts_uid);
  gdcm::PhotometricInterpretation pi = gdcm::PhotometricInterpretation::GetPIType(in->photometric);
  if (pi == gdcm::PhotometricInterpretation::UNKNOWN || pi == gdcm::PhotometricInterpretation::PI_END)
    return err_set(e, MSKX_EUNSUPPORTED, "%s: photometric interpretation %s is not supported", name, in->photometric);

  gdcm::SmartPointer<gdcm::SequenceOfFragments> sq = new gdcm::SequenceOfFragments;
  if (in->bot_len) sq->GetTable().SetByteValue(reinterpret_cast<const char *>(in->bot), (uint32_t)in->bot_len);
  for (int i = 0; i < in->n_frags; i++) {
    gdcm::Fragment frag;
    frag.SetByteValue(reinterpret_cast<const char *>(in->frag[i]), (uint32_t)in->frag_len[i]);
    sq->AddFragment(frag);
  }
  gdcm::DataElement pixel(gdcm::Tag(0x7fe0, 0x0010));
  pixel.SetVR(gdcm::VR::OB);
  pixel.SetValue(*sq);

  gdcm::Image img;
  img.SetNumberOfDimensions(in->frames > 1 ? 3 : 2);
  img.SetDimension(0, (unsigned)in->cols);
  img.SetDimension(1, (unsigned)in->rows);
  if (in->frames > 1) img.SetDimension(2, (unsigned)in->frames);
  gdcm::PixelFormat pf((unsigned short)in->samples, (unsigned short)in->bits_allocated,
                       (unsigned short)in->bits_stored, (unsigned short)in->high_bit,
                       (unsigned short)in->pixel_rep);
  img.SetPixelFormat(pf);
  img.SetPhotometricInterpretation(pi);
  if (in->samples == 3) img.SetPlanarConfiguration((unsigned)in->planar);
  img.SetTransferSyntax(ts);
  img.SetDataElement(pixel);

  unsigned long need = img.GetBufferLength();
  if (need == 0 || need > in->max_out)
    return err_set(e, MSKX_ELIMIT, "%s: decoded pixel data would take %lu bytes (limit %zu)", name, need, in->max_out);
  char *buf = static_cast<char *>(std::malloc(need));
  if (!buf) return err_set(e, MSKX_ENOMEM, "%s: cannot allocate %lu bytes for the decoded pixels", name, need);
  jpeg_warned = false;
  bool ok = gdcm::JPEGCodec().CanDecode(ts) ? decode_jpeg(img, pixel, in->jpeg_precision, in->frames, buf, need) : img.GetBuffer(buf);
  if (!ok || jpeg_warned) {
    std::free(buf);
    return err_set(e, MSKX_EFORMAT, "%s: %s pixel data could not be decoded (corrupt or truncated)", name,
                   ts.GetString());
  }
  // The codec may have changed the description (e.g. YBR_FULL_422 to RGB, or
  // bits allocated for a JPEG whose precision differs from the header).
  const gdcm::PixelFormat &opf = img.GetPixelFormat();
  out->buf = reinterpret_cast<uint8_t *>(buf);
  out->len = need;
  out->bits_allocated = opf.GetBitsAllocated();
  out->samples = opf.GetSamplesPerPixel();
  out->planar = out->samples == 3 ? (int)img.GetPlanarConfiguration() : 0;
  const char *ps = gdcm::PhotometricInterpretation::GetPIString(img.GetPhotometricInterpretation());
  std::snprintf(out->photometric, sizeof out->photometric, "%s", ps ? ps : in->photometric);
  // GDCM pads some strings with a trailing space.
  size_t k = std::strlen(out->photometric);
  while (k && out->photometric[k - 1] == ' ') out->photometric[--k] = 0;
  if (out->len != need || (out->bits_allocated != 8 && out->bits_allocated != 16)) {
    std::free(buf);
    out->buf = nullptr;
    return err_set(e, MSKX_EUNSUPPORTED, "%s: decoder produced %d-bit samples", name, out->bits_allocated);
  }
  return MSKX_OK;
}

// A text value as GDCM stores it: binary for US/SS/FD, else padded to even
// length (UI with NUL, others with a space, PS3.5 6.2).
gdcm::DataElement make_element(const dicom_attr &a) {
  gdcm::DataElement de(gdcm::Tag(a.group, a.element));
  gdcm::VR vr = gdcm::VR::GetVRType(a.vr);
  de.SetVR(vr);
  std::string v = a.value ? a.value : "";
  if (vr == gdcm::VR::US || vr == gdcm::VR::SS) {
    uint16_t x = (uint16_t)std::strtol(v.c_str(), nullptr, 10);
    de.SetByteValue(reinterpret_cast<const char *>(&x), 2);
    return de;
  }
  if (v.size() % 2) v += vr == gdcm::VR::UI ? '\0' : ' ';
  de.SetByteValue(v.data(), (uint32_t)v.size());
  return de;
}

int write_image(const dicom_write_in *in, uint8_t **out, size_t *len, mskx_err *e) {
  gdcm::ImageWriter w;
  gdcm::Image &img = w.GetImage();
  img.SetNumberOfDimensions(2);
  img.SetDimension(0, (unsigned)in->cols);
  img.SetDimension(1, (unsigned)in->rows);
  img.SetPixelFormat(gdcm::PixelFormat((unsigned short)in->samples, (unsigned short)in->bits_allocated,
                                       (unsigned short)in->bits_stored, (unsigned short)(in->bits_stored - 1),
                                       (unsigned short)in->pixel_rep));
  img.SetPhotometricInterpretation(gdcm::PhotometricInterpretation::GetPIType(in->photometric));
  if (in->samples == 3) img.SetPlanarConfiguration(0);
  img.SetSlope(in->slope);
  img.SetIntercept(in->intercept);
  img.SetTransferSyntax(gdcm::TransferSyntax::ExplicitVRLittleEndian);
  size_t n = (size_t)in->rows * (size_t)in->cols * (size_t)in->samples * (size_t)(in->bits_allocated / 8);
  gdcm::DataElement pixel(gdcm::Tag(0x7fe0, 0x0010));
  pixel.SetVR(in->bits_allocated == 8 ? gdcm::VR::OB : gdcm::VR::OW);
  pixel.SetByteValue(reinterpret_cast<const char *>(in->pixels), (uint32_t)n);
  img.SetDataElement(pixel);
  gdcm::DataSet &ds = w.GetFile().GetDataSet();
  for (int i = 0; i < in->n_attrs; i++) ds.Replace(make_element(in->attrs[i]));
  gdcm::TransferSyntax ts = gdcm::TransferSyntax::GetTSType(in->ts_uid);
  if (ts != gdcm::TransferSyntax::ExplicitVRLittleEndian) {
    gdcm::ImageChangeTransferSyntax change;
    change.SetTransferSyntax(ts);
    change.SetInput(img);
    if (!change.Change()) return err_set(e, MSKX_EINTERNAL, "cannot encode the image as %s", in->ts_uid);
    w.SetImage(change.GetOutput());
  }
  std::ostringstream os;
  w.SetStream(os);
  if (!w.Write()) return err_set(e, MSKX_EINTERNAL, "GDCM could not write the DICOM file");
  std::string bytes = os.str();
  *out = static_cast<uint8_t *>(std::malloc(bytes.size()));
  if (!*out) return err_set(e, MSKX_ENOMEM, "out of memory");
  std::memcpy(*out, bytes.data(), bytes.size());
  *len = bytes.size();
  return MSKX_OK;
}

// ---------------------------------------------------------------- SR

gdcm::DataElement text_element(uint16_t g, uint16_t el, const char *vr, const std::string &v) {
  dicom_attr a = {g, el, {vr[0], vr[1], 0}, v.c_str()};
  return make_element(a);
}

void put(gdcm::DataSet &ds, uint16_t g, uint16_t el, const char *vr, const std::string &v) {
  ds.Replace(text_element(g, el, vr, v));
}

gdcm::SmartPointer<gdcm::SequenceOfItems> new_sequence() {
  gdcm::SmartPointer<gdcm::SequenceOfItems> sq = new gdcm::SequenceOfItems;
  sq->SetLengthToUndefined();
  return sq;
}

void put_sequence(gdcm::DataSet &ds, uint16_t g, uint16_t el, gdcm::SmartPointer<gdcm::SequenceOfItems> sq) {
  gdcm::DataElement de(gdcm::Tag(g, el));
  de.SetVR(gdcm::VR::SQ);
  de.SetValue(*sq);
  de.SetVLToUndefined();
  ds.Replace(de);
}

gdcm::Item new_item() {
  gdcm::Item it;
  it.SetVLToUndefined();
  return it;
}

// A code sequence item: (scheme, value, meaning).
void put_code(gdcm::DataSet &ds, uint16_t g, uint16_t el, const char *scheme, const char *value, const char *meaning) {
  gdcm::Item it = new_item();
  gdcm::DataSet &c = it.GetNestedDataSet();
  put(c, 0x0008, 0x0100, "SH", value);
  put(c, 0x0008, 0x0102, "SH", scheme);
  put(c, 0x0008, 0x0104, "LO", meaning);
  gdcm::SmartPointer<gdcm::SequenceOfItems> sq = new_sequence();
  sq->AddItem(it);
  put_sequence(ds, g, el, sq);
}

// Codes of our own (PS3.16 8.2: a local scheme starts with "99").
const char *const OWN = "99MSKX";

gdcm::Item content_item(const char *rel, const char *type, const char *scheme, const char *value, const char *meaning) {
  gdcm::Item it = new_item();
  gdcm::DataSet &c = it.GetNestedDataSet();
  put(c, 0x0040, 0xA010, "CS", rel);
  put(c, 0x0040, 0xA040, "CS", type);
  put_code(c, 0x0040, 0xA043, scheme, value, meaning);
  return it;
}

gdcm::Item text_item(const char *scheme, const char *value, const char *meaning, const std::string &text) {
  gdcm::Item it = content_item("CONTAINS", "TEXT", scheme, value, meaning);
  put(it.GetNestedDataSet(), 0x0040, 0xA160, "UT", text);
  return it;
}

gdcm::Item num_item(const char *value, const char *meaning, double x) {
  gdcm::Item it = content_item("CONTAINS", "NUM", OWN, value, meaning);
  gdcm::Item mv = new_item();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", x);
  put(mv.GetNestedDataSet(), 0x0040, 0xA30A, "DS", buf);
  put_code(mv.GetNestedDataSet(), 0x0040, 0x08EA, "UCUM", "1", "no units");
  gdcm::SmartPointer<gdcm::SequenceOfItems> sq = new_sequence();
  sq->AddItem(mv);
  put_sequence(it.GetNestedDataSet(), 0x0040, 0xA300, sq);
  return it;
}

int write_sr(const dicom_sr_in *in, uint8_t **out, size_t *len, mskx_err *e) {
  const dicom_meta &s0 = in->src[0];
  const char *series = in->series_uid, *sop = in->sop_uid;
  std::string date(in->datetime, 8), time(in->datetime + 8);

  gdcm::Writer w;
  gdcm::DataSet &ds = w.GetFile().GetDataSet();
  if (s0.charset[0]) put(ds, 0x0008, 0x0005, "CS", s0.charset);
  put(ds, 0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.88.33");  // Comprehensive SR Storage
  put(ds, 0x0008, 0x0018, "UI", sop);
  put(ds, 0x0008, 0x0020, "DA", s0.study_date);
  put(ds, 0x0008, 0x0023, "DA", date);
  put(ds, 0x0008, 0x0030, "TM", s0.study_time);
  put(ds, 0x0008, 0x0033, "TM", time);
  put(ds, 0x0008, 0x0050, "SH", s0.accession);
  put(ds, 0x0008, 0x0060, "CS", "SR");
  put(ds, 0x0008, 0x0070, "LO", "mskx");
  put(ds, 0x0008, 0x0090, "PN", s0.referring_physician);
  put(ds, 0x0010, 0x0010, "PN", s0.patient_name);
  put(ds, 0x0010, 0x0020, "LO", s0.patient_id);
  put(ds, 0x0010, 0x0030, "DA", s0.patient_birth_date);
  put(ds, 0x0010, 0x0040, "CS", s0.patient_sex);
  put(ds, 0x0018, 0x1020, "LO", MSKX_VERSION);
  put(ds, 0x0020, 0x000D, "UI", s0.study_uid);
  put(ds, 0x0020, 0x000E, "UI", series);
  put(ds, 0x0020, 0x0010, "SH", s0.study_id);
  put(ds, 0x0020, 0x0011, "IS", "9001");
  put(ds, 0x0020, 0x0013, "IS", "1");
  put_sequence(ds, 0x0008, 0x1111, new_sequence());  // Referenced Performed Procedure Step (type 2, empty)
  put_sequence(ds, 0x0040, 0xA372, new_sequence());  // Performed Procedure Code (type 2, empty)
  put(ds, 0x0040, 0xA491, "CS", "COMPLETE");    // Completion Flag
  put(ds, 0x0040, 0xA493, "CS", "UNVERIFIED");  // Verification Flag
  put(ds, 0x0040, 0xA040, "CS", "CONTAINER");
  put(ds, 0x0040, 0xA050, "CS", "SEPARATE");
  put_code(ds, 0x0040, 0xA043, "LN", "18748-4", "Diagnostic imaging report");
  gdcm::SmartPointer<gdcm::SequenceOfItems> content = new_sequence();
  content->AddItem(num_item("P-ABNORMAL", "Probability of abnormality", in->probability));
  content->AddItem(text_item(OWN, "DECISION", "Abnormality decision", in->abnormal ? "abnormal" : "normal"));
  content->AddItem(num_item("THRESHOLD", "Decision threshold", in->threshold));
  content->AddItem(text_item(OWN, "MURA-PART", "MURA body part", in->part && in->part[0] ? in->part : "unknown"));
  content->AddItem(text_item("DCM", "111001", "Algorithm Name", std::string("mskx ") + (in->model ? in->model : "")));
  content->AddItem(text_item("DCM", "111003", "Algorithm Version", MSKX_VERSION));
  for (int i = 0; i < in->n_src; i++) {
    gdcm::Item it = content_item("CONTAINS", "IMAGE", "DCM", "121112", "Source of Measurement");
    gdcm::Item ref = new_item();
    put(ref.GetNestedDataSet(), 0x0008, 0x1150, "UI", in->src[i].sop_class_uid);
    put(ref.GetNestedDataSet(), 0x0008, 0x1155, "UI", in->src[i].sop_instance_uid);
    gdcm::SmartPointer<gdcm::SequenceOfItems> rs = new_sequence();
    rs->AddItem(ref);
    put_sequence(it.GetNestedDataSet(), 0x0008, 0x1199, rs);
    content->AddItem(it);
  }
  put_sequence(ds, 0x0040, 0xA730, content);
  // Current Requested Procedure Evidence: study -> series -> instances.
  gdcm::SmartPointer<gdcm::SequenceOfItems> series_sq = new_sequence();
  for (int i = 0; i < in->n_src; i++) {
    int first = 1;
    for (int j = 0; j < i; j++)
      if (!std::strcmp(in->src[j].series_uid, in->src[i].series_uid)) first = 0;
    if (!first) continue;
    gdcm::Item si = new_item();
    gdcm::SmartPointer<gdcm::SequenceOfItems> inst = new_sequence();
    for (int j = i; j < in->n_src; j++) {
      if (std::strcmp(in->src[j].series_uid, in->src[i].series_uid)) continue;
      gdcm::Item ri = new_item();
      put(ri.GetNestedDataSet(), 0x0008, 0x1150, "UI", in->src[j].sop_class_uid);
      put(ri.GetNestedDataSet(), 0x0008, 0x1155, "UI", in->src[j].sop_instance_uid);
      inst->AddItem(ri);
    }
    put_sequence(si.GetNestedDataSet(), 0x0008, 0x1199, inst);
    put(si.GetNestedDataSet(), 0x0020, 0x000E, "UI", in->src[i].series_uid);
    series_sq->AddItem(si);
  }
  gdcm::Item study_item = new_item();
  put_sequence(study_item.GetNestedDataSet(), 0x0008, 0x1115, series_sq);
  put(study_item.GetNestedDataSet(), 0x0020, 0x000D, "UI", s0.study_uid);
  gdcm::SmartPointer<gdcm::SequenceOfItems> evidence = new_sequence();
  evidence->AddItem(study_item);
  put_sequence(ds, 0x0040, 0xA375, evidence);

  w.GetFile().GetHeader().SetDataSetTransferSyntax(gdcm::TransferSyntax::ExplicitVRLittleEndian);
  std::ostringstream os;
  w.SetStream(os);
  if (!w.Write()) return err_set(e, MSKX_EINTERNAL, "GDCM could not write the Structured Report");
  std::string bytes = os.str();
  *out = static_cast<uint8_t *>(std::malloc(bytes.size()));
  if (!*out) return err_set(e, MSKX_ENOMEM, "out of memory");
  std::memcpy(*out, bytes.data(), bytes.size());
  *len = bytes.size();
  return MSKX_OK;
}

}  // namespace

extern "C" int dicom_sr_encode(const dicom_sr_in *in, uint8_t **out, size_t *len, mskx_err *e) {
  *out = nullptr;
  *len = 0;
  if (!in || in->n_src < 1 || !in->datetime || std::strlen(in->datetime) != 14 || !in->series_uid || !in->sop_uid)
    return err_set(e, MSKX_EINVAL, "dicom_sr_encode: needs at least one source image and a 14-digit date-time");
  try {
    quiet();
    return write_sr(in, out, len, e);
  } catch (const std::bad_alloc &) {
    return err_set(e, MSKX_ENOMEM, "out of memory writing a Structured Report");
  } catch (...) {
    return err_set(e, MSKX_EINTERNAL, "GDCM failed writing a Structured Report");
  }
}

extern "C" int dicom_codec_write_image(const dicom_write_in *in, uint8_t **out, size_t *len, mskx_err *e) {
  *out = nullptr;
  *len = 0;
  try {
    quiet();
    return write_image(in, out, len, e);
  } catch (const std::bad_alloc &) {
    return err_set(e, MSKX_ENOMEM, "out of memory writing a DICOM file");
  } catch (...) {
    return err_set(e, MSKX_EINTERNAL, "GDCM failed writing a DICOM file");
  }
}

extern "C" int dicom_codec_decode(const dicom_codec_in *in, const char *name, dicom_codec_out *out, mskx_err *e) {
  std::memset(out, 0, sizeof *out);
  try {
    quiet();
    return decode(in, name, out, e);
  } catch (const std::bad_alloc &) {
    std::free(out->buf);
    out->buf = nullptr;
    return err_set(e, MSKX_ENOMEM, "%s: out of memory decoding the pixel data", name);
  } catch (...) {
    std::free(out->buf);
    out->buf = nullptr;
    return err_set(e, MSKX_EFORMAT, "%s: the pixel data could not be decoded", name);
  }
}
