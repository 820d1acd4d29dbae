#!/usr/bin/python3
"""DICOM fixtures and reference pixels for tests/io/dicom_test.sh.

make OUT PHANTOM.png   writes OUT/src/*.dcm with pydicom (uncompressed: windows,
                       rescales, MONOCHROME1, 8/12/16-bit, signed, LUT sequences,
                       padding, RGB, multi-frame); the shell test then makes the
                       compressed and re-encoded variants with DCMTK and GDCM.
ref DIR...             for every *.dcm in DIR writes <name>.ref.npy: the 8-bit
                       image(s) from pydicom (GDCM handler for compressed syntaxes)
                       through apply_modality_lut / apply_voi_lut, MONOCHROME1
                       inverted, padding black, the auto window when none is given.
compare REFDIR PNGDIR  prints 'PASS dicom_ref_<name> maxdiff=D' or FAIL per fixture
                       (mskx's PNGs must be within 1 grey level everywhere).
"""
import glob
import os
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

# pydicom's own decoders first, GDCM for the compressed syntaxes.
pydicom.config.pixel_data_handlers = [
    h for h in pydicom.config.pixel_data_handlers if h.__name__.split('.')[-1] in ('numpy_handler', 'gdcm_handler', 'rle_handler')
]

AUTO_LO, AUTO_HI = 0.005, 0.995  # DICOM_AUTO_LO/HI in src/io/dicom_internal.h
STUDY = generate_uid(prefix='1.2.826.0.1.3680043.10.1234.')
SECRET_NAME, SECRET_ID = 'Secretname^Jane', 'PID-SECRET-4711'


def base_ds(arr, ts, **attrs):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.1.1'  # Digital X-Ray Image Storage - For Presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ts
    ds = FileDataset(None, {}, file_meta=meta, preamble=b'\0' * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = ts == ImplicitVRLittleEndian
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = 'DX'
    ds.PatientName = SECRET_NAME
    ds.PatientID = SECRET_ID
    ds.PatientBirthDate = '19700101'
    ds.PatientSex = 'F'
    ds.StudyDate = '20260101'
    ds.StudyTime = '120000'
    ds.AccessionNumber = 'ACC1'
    ds.BodyPartExamined = 'WRIST'
    frames = arr.shape[0] if arr.ndim == 3 and attrs.get('SamplesPerPixel', 1) == 1 or arr.ndim == 4 else 1
    ds.Rows, ds.Columns = arr.shape[-3:-1] if attrs.get('SamplesPerPixel', 1) == 3 else arr.shape[-2:]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = 'MONOCHROME2'
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if arr.dtype.kind == 'i' else 0
    for k, v in attrs.items():
        setattr(ds, k, v)
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.PixelData = arr.astype(arr.dtype.newbyteorder('<')).tobytes()
    return ds


def lut_seq(descriptor, data):
    item = Dataset()
    item.add_new(0x00283002, 'US', list(descriptor))
    item.add_new(0x00283006, 'US', [int(v) for v in data])
    return [item]


def make(out, phantom):
    from PIL import Image
    os.makedirs(out, exist_ok=True)
    g = np.asarray(Image.open(phantom).convert('L'), dtype=np.int64)
    h, w = g.shape
    yy, xx = np.mgrid[0:h, 0:w]
    b12 = (g * 16 + (xx + yy) % 16).astype(np.uint16)  # 0..4095
    ex, im = ExplicitVRLittleEndian, ImplicitVRLittleEndian
    fx = {}
    fx['u12_window'] = base_ds(b12, ex, BitsStored=12, HighBit=11, WindowCenter=2048, WindowWidth=3000)
    fx['mono1_rescale_implicit'] = base_ds(b12, im, BitsStored=12, HighBit=11, PhotometricInterpretation='MONOCHROME1',
                                           RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=[2500, 100],
                                           WindowWidth=[5000, 50])
    fx['signed_linear_exact'] = base_ds((b12.astype(np.int32) - 2048).astype(np.int16), ex, BitsStored=16, HighBit=15,
                                        WindowCenter=100, WindowWidth=3000, VOILUTFunction='LINEAR_EXACT',
                                        RescaleSlope=1, RescaleIntercept=0)
    fx['sigmoid'] = base_ds(b12, ex, BitsStored=12, HighBit=11, WindowCenter=2048, WindowWidth=2000,
                            VOILUTFunction='SIGMOID')
    fx['u16_auto'] = base_ds((b12.astype(np.uint32) * 16 + 7).astype(np.uint16), ex, BodyPartExamined='HAND')
    pad = b12.copy()
    pad[:, : w // 8] = 4095
    fx['mono1_padding_auto'] = base_ds(pad, ex, BitsStored=12, HighBit=11, PhotometricInterpretation='MONOCHROME1',
                                       PixelPaddingValue=4095)
    curve = np.round(np.sqrt(np.arange(4096) / 4095.0) * 4095).astype(np.uint16)
    fx['voi_lut_seq'] = base_ds(b12, ex, BitsStored=12, HighBit=11, VOILUTSequence=lut_seq([4096, 0, 12], curve))
    mcurve = (np.arange(4096) * 12 + 500).astype(np.uint16)
    fx['modality_lut_seq'] = base_ds(b12, ex, BitsStored=12, HighBit=11, WindowCenter=25000, WindowWidth=40000,
                                     ModalityLUTSequence=lut_seq([4096, 0, 16], mcurve))
    fx['u8_auto'] = base_ds(g.astype(np.uint8), ex, StudyDescription='XR ELBOW 2 VIEWS', BodyPartExamined='')
    rgb = np.stack([g, g // 2, 255 - g], axis=-1).astype(np.uint8)
    fx['rgb'] = base_ds(rgb, ex, SamplesPerPixel=3, PhotometricInterpretation='RGB')
    frames = np.stack([b12, 4095 - b12, b12 // 2]).astype(np.uint16)
    fx['multiframe'] = base_ds(frames, ex, BitsStored=12, HighBit=11, WindowCenter=2048, WindowWidth=4096)
    other = base_ds(b12, ex, BitsStored=12, HighBit=11, WindowCenter=2048, WindowWidth=3000, BodyPartExamined='FOOT')
    other.StudyInstanceUID = generate_uid()
    fx['other_study_foot'] = other
    for name, ds in fx.items():
        ds.save_as(os.path.join(out, name + '.dcm'), write_like_original=False)
    # A phantom of the same pixels as PNG, windowed like u12_window, for the predict comparison.
    ref = reference(pydicom.dcmread(os.path.join(out, 'u12_window.dcm')))
    Image.fromarray(ref[0]).save(os.path.join(out, 'u12_window_ref.png'))


def window_range(ds):
    if ds.get('ModalityLUTSequence'):
        lo, hi = 0, 2 ** ds.ModalityLUTSequence[0].LUTDescriptor[2] - 1
    elif ds.PixelRepresentation == 0:
        lo, hi = 0, 2 ** ds.BitsStored - 1
    else:
        lo, hi = -2 ** (ds.BitsStored - 1), 2 ** (ds.BitsStored - 1) - 1
    if 'RescaleSlope' in ds and 'RescaleIntercept' in ds and not ds.get('ModalityLUTSequence'):
        lo, hi = lo * ds.RescaleSlope + ds.RescaleIntercept, hi * ds.RescaleSlope + ds.RescaleIntercept
    return float(lo), float(hi)


def to8(v):
    return np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8)


def luma(a):
    a = a.astype(np.int64)
    return ((299 * a[..., 0] + 587 * a[..., 1] + 114 * a[..., 2] + 500) // 1000).astype(np.uint8)


def reference(ds, minmax=False):
    arr = ds.pixel_array
    frames = int(ds.get('NumberOfFrames', 1) or 1)
    if ds.SamplesPerPixel == 3:
        if frames == 1:
            arr = arr[None]
        # YBR_FULL(_422) carries BT.601 luma as Y (PS3.3 C.7.6.3.1.2); going
        # through RGB would clip saturated colours first.
        if ds.PhotometricInterpretation.startswith('YBR_FULL'):
            return [f[..., 0].astype(np.uint8) for f in arr]
        return [luma(f) for f in arr]
    if frames == 1:
        arr = arr[None]
    out = []
    stored = arr.astype(np.int64)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        # Decoded values, clamped to the stored range (lossy codecs overshoot it).
        lo = -2 ** (ds.BitsStored - 1) if ds.PixelRepresentation else 0
        stored = np.clip(stored, lo, lo + 2 ** ds.BitsStored - 1)
    for f in stored:
        m = apply_modality_lut(f, ds).astype(np.float64)
        pad = np.zeros(f.shape, bool)
        if 'PixelPaddingValue' in ds:
            lim = ds.get('PixelPaddingRangeLimit', ds.PixelPaddingValue)
            lo, hi = min(ds.PixelPaddingValue, lim), max(ds.PixelPaddingValue, lim)
            pad = (f >= lo) & (f <= hi)
        if ds.get('VOILUTSequence'):
            bits = ds.VOILUTSequence[0].LUTDescriptor[2]
            y = apply_voi_lut(m, ds, index=0).astype(np.float64) * 255.0 / (2 ** bits - 1)
        elif 'WindowCenter' in ds and 'WindowWidth' in ds:
            lo, hi = window_range(ds)
            y = (apply_voi_lut(m, ds, index=0) - lo) / (hi - lo) * 255.0
        else:
            v = np.sort(m[~pad])
            n = v.size
            if minmax:
                lo, hi = v[0], v[-1]
            else:
                lo, hi = v[int(np.floor(AUTO_LO * (n - 1)))], v[int(np.ceil(AUTO_HI * (n - 1)))]
            y = (m - lo) / (hi - lo) * 255.0 if hi > lo else np.where(m > lo, 255.0, 0.0)
        y8 = to8(y)
        if ds.PhotometricInterpretation == 'MONOCHROME1':
            y8 = 255 - y8
        y8[pad] = 0
        out.append(y8)
    return out


def meta_end(b):
    """Offset of the data set: after the preamble and the file meta group."""
    assert b[128:132] == b'DICM'
    return 132 + 12 + int.from_bytes(b[140:144], 'little')


def find_elem(b, group, elem, start):
    """Offset of an explicit-VR little-endian element header (group, elem) after start."""
    return b.index(group.to_bytes(2, 'little') + elem.to_bytes(2, 'little'), start)


def hostile(src, out):
    """Malformed files from good ones: each must give a clear error, never a crash."""
    os.makedirs(out, exist_ok=True)
    good = open(os.path.join(src, 'u12_window.dcm'), 'rb').read()
    ds0 = meta_end(good)
    pix = good.index(b'\xe0\x7f\x10\x00')
    files = {}
    files['truncated_header'] = good[:ds0 + 40]
    files['truncated_pixels'] = good[:pix + 12 + 100]
    files['truncated_meta'] = good[:150]
    b = bytearray(good)
    rows = find_elem(b, 0x0028, 0x0010, ds0)
    b[rows + 6:rows + 8] = (0xFFF0).to_bytes(2, 'little')  # Rows claims 65520 bytes
    files['lying_length'] = bytes(b)
    b = bytearray(good)
    b[pix + 8:pix + 12] = (0x7FFFFFF0).to_bytes(4, 'little')  # pixel data claims 2 GiB
    files['lying_pixel_length'] = bytes(b)
    b = bytearray(good)
    cols = find_elem(b, 0x0028, 0x0011, ds0)
    b[rows + 8:rows + 10] = (65535).to_bytes(2, 'little')
    b[cols + 8:cols + 10] = (65535).to_bytes(2, 'little')
    files['huge_dimensions'] = bytes(b)
    b = bytearray(good)
    b[rows + 8:rows + 10] = (int.from_bytes(b[rows + 8:rows + 10], 'little') + 7).to_bytes(2, 'little')
    files['short_pixel_data'] = bytes(b)
    b = bytearray(good)
    b[rows + 4:rows + 6] = b'zq'  # not a VR
    files['bad_vr'] = bytes(b)
    b = bytearray(good)
    # Rows as a 4-byte UL: the right tag with the wrong VR and length
    files['wrong_vr_length'] = bytes(b[:rows]) + b'\x28\x00\x10\x00UL\x04\x00' + b[rows + 8:rows + 10] + b'\0\0' + bytes(b[rows + 10:])
    depth = 10000
    nest = (b'\x08\x00\x15\x11SQ\0\0\xff\xff\xff\xff' + b'\xfe\xff\x00\xe0\xff\xff\xff\xff') * depth
    close = (b'\xfe\xff\x0d\xe0\0\0\0\0' + b'\xfe\xff\xdd\xe0\0\0\0\0') * depth
    files['nested_10000'] = good[:ds0] + nest + close + good[ds0:]
    b = bytearray(good)
    ts = b.index(b'1.2.840.10008.1.2.1\0')
    files['unsupported_syntax'] = bytes(b[:ts]) + b'1.2.840.10008.1.2.4.100\0' + bytes(b[ts + 20:])
    files['unsupported_syntax'] = fix_meta_lengths(files['unsupported_syntax'], 4)
    j2k = bytearray(open(os.path.join(src, '..', 'c', 'j2k_lossless.dcm'), 'rb').read())
    siz = j2k.index(b'\xff\x4f\xff\x51')
    j2k[siz + 8:siz + 12] = (60000).to_bytes(4, 'big')    # Xsiz
    j2k[siz + 12:siz + 16] = (60000).to_bytes(4, 'big')   # Ysiz
    files['j2k_lying_size'] = bytes(j2k)
    jp = bytearray(open(os.path.join(src, '..', 'c', 'jpeg_lossless_sv1.dcm'), 'rb').read())
    sof = jp.index(b'\xff\xc3')
    jp[sof + 5:sof + 7] = (30000).to_bytes(2, 'big')     # frame height
    files['jpeg_lying_size'] = bytes(jp)
    jp = bytearray(open(os.path.join(src, '..', 'c', 'jpeg_lossless_sv1.dcm'), 'rb').read())
    frag = jp.index(b'\xff\xd8\xff')
    jp[frag + 400:frag + 1400] = bytes(1000)  # scan data zeroed, structure intact
    files['jpeg_corrupt'] = bytes(jp)
    j2 = bytearray(open(os.path.join(src, '..', 'c', 'j2k_lossless.dcm'), 'rb').read())
    siz = j2.index(b'\xff\x4f\xff\x51')
    j2[siz + 300:siz + 1300] = bytes(1000)
    files['j2k_corrupt'] = bytes(j2)
    jl = bytearray(open(os.path.join(src, '..', 'c', 'jpegls_lossless.dcm'), 'rb').read())
    frag = jl.index(b'\xff\xd8\xff')
    jl[frag + 200:frag + 1200] = b'\xff' * 1000
    files['jpegls_corrupt'] = bytes(jl)
    rle = bytearray(open(os.path.join(src, '..', 'c', 'rle.dcm'), 'rb').read())
    frag = rle.index(b'\xfe\xff\x00\xe0', rle.index(b'\xe0\x7f\x10\x00') + 12 + 8)
    rle[frag + 8:frag + 12] = (9).to_bytes(4, 'little')   # 9 segments for a 1-sample 16-bit image
    files['rle_bad_header'] = bytes(rle)
    files['not_an_image'] = good[:pix]
    for k, v in files.items():
        open(os.path.join(out, k + '.dcm'), 'wb').write(v)


def fix_meta_lengths(b, delta):
    """After growing the Transfer Syntax UID by delta bytes: its length and the group length."""
    b = bytearray(b)
    ts = find_elem(b, 0x0002, 0x0010, 132)
    b[ts + 6:ts + 8] = (int.from_bytes(b[ts + 6:ts + 8], 'little') + delta).to_bytes(2, 'little')
    b[140:144] = (int.from_bytes(b[140:144], 'little') + delta).to_bytes(4, 'little')
    return bytes(b)


def ref(dirs):
    for d in dirs:
        for p in sorted(glob.glob(os.path.join(d, '*.dcm'))):
            r = reference(pydicom.dcmread(p))
            np.save(p[:-4] + '.ref.npy', np.stack(r))


def compare(refdir, pngdir):
    from PIL import Image
    worst = 0
    for p in sorted(glob.glob(os.path.join(refdir, '*.ref.npy'))):
        name = os.path.basename(p)[:-8]
        r = np.load(p)
        pngs = [os.path.join(pngdir, name + '.png')] if r.shape[0] == 1 else [
            os.path.join(pngdir, '%s_f%d.png' % (name, i + 1)) for i in range(r.shape[0])]
        if not all(os.path.exists(q) for q in pngs):
            print('FAIL dicom_ref_%s: mskx wrote no image' % name)
            continue
        got = np.stack([np.asarray(Image.open(q).convert('L')) for q in pngs]).astype(np.int64)
        if got.shape != r.shape:
            print('FAIL dicom_ref_%s: shape %s, reference %s' % (name, got.shape, r.shape))
            continue
        d = int(np.abs(got - r.astype(np.int64)).max())
        worst = max(worst, d)
        share = float((np.abs(got - r.astype(np.int64)) > 0).mean())
        print('%s dicom_ref_%s maxdiff=%d differing=%.4f%%' % ('PASS' if d <= 1 else 'FAIL', name, d, 100 * share))
    print('# worst maxdiff %d' % worst)


if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'make':
        make(sys.argv[2], sys.argv[3])
    elif cmd == 'hostile':
        hostile(sys.argv[2], sys.argv[3])
    elif cmd == 'ref':
        ref(sys.argv[2:])
    elif cmd == 'compare':
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit('unknown command ' + cmd)
