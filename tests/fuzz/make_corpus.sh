#!/usr/bin/env bash
# Regenerates the seed corpora in tests/fuzz/corpus/ with mskx itself (a tiny
# trained model, its config.json, a per-part bundle, an ensemble, MURA CSVs)
# and a few hand-shaped npy files and multipart bodies; the weight-import seeds
# come from tests/tools/make_import_fixtures.py --small (Debian's torch and h5py).
# Usage: tests/fuzz/make_corpus.sh [MSKX_BINARY]   (default build/mskx)
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build/mskx}
S=$(mktemp -d); trap 'rm -rf "$S"' EXIT
C=tests/fuzz/corpus
ARCH="densenet:growth=4,blocks=1-1,init=8,bn_size=2"
mkdir -p $C/{safetensors,npy,multipart,dataset_csv,model_json,train_config,image,bundle_selection}
"$B" synth --out "$S/syn" --studies 40 --seed 3 --min-size 40 --max-size 56 --threads 2 >/dev/null 2>&1
"$B" train --data "$S/syn/MURA-v1.1" --out "$S/run" --arch "$ARCH" --size 32 --batch 8 --threads 2 --epochs 1 --seed 1 >/dev/null 2>&1
"$B" train --data "$S/syn/MURA-v1.1" --out "$S/pp" --arch "$ARCH" --size 32 --batch 8 --threads 2 --epochs 1 \
  --per-part --parts XR_HAND,XR_WRIST --class-weights balanced --seed 1 >/dev/null 2>&1
"$B" ensemble --out "$S/ens.json" --method mean "$S/run/best.safetensors" "$S/run/last.safetensors" >/dev/null 2>&1
cp "$S/run/best.safetensors" $C/safetensors/model.safetensors
"$B" quantize --model "$S/run/best.safetensors" --data "$S/syn/MURA-v1.1" --out "$C/safetensors/model_int8.safetensors" \
  --calib 8 --threads 2 >/dev/null
cp "$S/run/best.safetensors" $C/model_json/model.safetensors
cp "$S/ens.json" $C/model_json/ensemble.json
# stack-features: members that will not resolve, so only the parsing up to them runs.
printf '%s\n' '{"format": "mskx-ensemble-1", "method": "stack-features", "threshold": 0.5,' \
  ' "members": [{"path": "a.safetensors", "weight": 1}, {"path": "b.safetensors", "weight": 1}],' \
  ' "stacker": {"dims": [2, 1], "mean": [0.1, 0.2, 0.3], "scale": [1, 0.5, 2], "coef": [0.4, -0.2, 1.5], "intercept": -0.1, "C": 0.1}}' \
  > $C/model_json/stack_features.json
cp "$S/pp/bundle.json" $C/model_json/bundle.json
cp "$S/run/config.json" $C/train_config/config.json
# train_config/legacy_numeric_bools.json is kept as written by mskx before the
# options table (booleans as 0/1, sync_bn added last): old run folders still resume.
cp "$S/pp/config.json" $C/train_config/per_part.json
# An arch map in config.json, and a bundle chosen per part with its "selection" record.
"$B" train --data "$S/syn/MURA-v1.1" --out "$S/map" --arch "XR_HAND=$ARCH,densenet:growth=6,blocks=2-1,init=8,bn_size=2" \
  --size 32 --batch 8 --threads 2 --epochs 1 --per-part --parts XR_HAND,XR_WRIST --class-weights balanced --seed 1 \
  >/dev/null 2>&1
cp "$S/map/config.json" $C/train_config/arch_map.json
"$B" bundle --out "$S/sel.json" --select kappa --data "$S/syn/MURA-v1.1" "$S/pp" "$S/map" >/dev/null 2>&1
cp "$S/sel.json" $C/bundle_selection/selection.json
# dataset_csv: the first byte picks the file (0..3: MURA's four CSVs, 4: a generic CSV).
{ printf '\x00'; head -20 "$S/syn/MURA-v1.1/train_image_paths.csv"; } > $C/dataset_csv/train_paths.csv
{ printf '\x02'; head -10 "$S/syn/MURA-v1.1/train_labeled_studies.csv"; } > $C/dataset_csv/train_labels.csv
{ printf '\x04'; echo "image_path,label,study_id,part,split"; echo "a/b.png,1,s1,XR_HAND,train";
  echo "a/c.png,0,s2,XR_WRIST,valid"; echo '"q,uoted.png",1,s3,XR_HAND,valid'; } > $C/dataset_csv/generic.csv
{ printf '\x04'; echo "image_path,label"; echo "x.png,1"; echo "y.jpg,0"; } > $C/dataset_csv/generic_min.csv
png=$(find "$S/syn/MURA-v1.1/train" -name '*.png' | sort | head -1)
python3 - "$C" "$png" <<'PY'
import struct, sys
C, png_path = sys.argv[1], sys.argv[2]
def npy(shape, vals, ver=1):
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % (
        ", ".join(map(str, shape)) + ("," if len(shape) == 1 else ""))
    pre = 10 if ver == 1 else 12
    hdr += " " * (64 - (pre + len(hdr) + 1) % 64) + "\n"
    size = struct.pack("<H", len(hdr)) if ver == 1 else struct.pack("<I", len(hdr))
    return b"\x93NUMPY" + bytes([ver, 0]) + size + hdr.encode() + struct.pack("<%df" % len(vals), *vals)
open(C + "/npy/batch.npy", "wb").write(npy((1, 3, 4, 4), [i / 10 for i in range(48)]))
open(C + "/npy/target.npy", "wb").write(npy((2,), [0.0, 1.0]))
open(C + "/npy/v2.npy", "wb").write(npy((2, 2), [1, 2, 3, 4], ver=2))
png = open(png_path, "rb").read()
B = b"XyZzy42"
def mp(parts, ct=b"multipart/form-data; boundary=XyZzy42"):   # first line: the Content-Type header
    body = b"".join(b"--" + B + b"\r\n" + h + b"\r\n\r\n" + d + b"\r\n" for h, d in parts)
    return ct + b"\n" + body + b"--" + B + b"--\r\n"
img = b'Content-Disposition: form-data; name="images"; filename="a.png"\r\nContent-Type: image/png'
open(C + "/multipart/one_image.txt", "wb").write(mp([(img, png)]))
open(C + "/multipart/part_field.txt", "wb").write(mp([(b'Content-Disposition: form-data; name="part"', b"XR_WRIST"),
    (b'Content-Disposition: form-data; name="images"; filename="b.png"\r\nContent-Type: image/png; charset="x"', b"\x89PNG")]))
open(C + "/multipart/quoted_boundary.txt", "wb").write(mp([(b'Content-Disposition: form-data; name="x"', b"1")],
    ct=b'multipart/form-data; boundary="XyZzy42"'))
PY
# dicom: small phantoms through pydicom, DCMTK and GDCM (tests/io/dicom_fixtures.py).
mkdir -p $C/dicom
dpng=$(find "$S/syn/MURA-v1.1" -name '*.png' | sort | head -1)
/usr/bin/python3 tests/io/dicom_fixtures.py make "$S/dcm" "$dpng"
for f in u12_window mono1_rescale_implicit voi_lut_seq modality_lut_seq rgb mono1_padding_auto; do cp "$S/dcm/$f.dcm" $C/dicom/; done
dcmconv +tb "$S/dcm/u12_window.dcm" $C/dicom/big_endian.dcm
dcmconv +td "$S/dcm/u12_window.dcm" $C/dicom/deflated.dcm
dcmcjpeg +e1 "$S/dcm/u12_window.dcm" $C/dicom/jpeg_lossless.dcm
dcmcjpeg +eb "$S/dcm/rgb.dcm" $C/dicom/jpeg_ybr.dcm
dcmcjpls "$S/dcm/u12_window.dcm" $C/dicom/jpegls.dcm
gdcmconv --j2k "$S/dcm/u12_window.dcm" $C/dicom/j2k.dcm
dcmcrle "$S/dcm/u12_window.dcm" $C/dicom/rle.dcm
# image: the first byte picks the fuzz target's output sizes; then a synth
# radiograph as PNG, and as interlaced PNG, baseline and progressive JPEG
# (PIL), and a 16-bit grey PNG.
/usr/bin/python3 - "$C" "$png" <<'PY'
import io, sys
from PIL import Image
C, png_path = sys.argv[1], sys.argv[2]
im = Image.open(png_path).convert("L")
def save(name, opt, **kw):
    b = io.BytesIO()
    im.save(b, **kw)
    open(C + "/image/" + name, "wb").write(bytes([opt]) + b.getvalue())
open(C + "/image/synth.png", "wb").write(bytes([0x47]) + open(png_path, "rb").read())
save("baseline.jpg", 0x93, format="JPEG", quality=90)
save("progressive.jpg", 0x2a, format="JPEG", quality=80, progressive=True)
Image.merge("RGB", (im, im.point(lambda v: 255 - v), im)).save(b := io.BytesIO(), format="JPEG", quality=85)
open(C + "/image/rgb.jpg", "wb").write(bytes([0x51]) + b.getvalue())
im.point(lambda v: v * 257).convert("I;16").save(b := io.BytesIO(), format="PNG")
open(C + "/image/grey16.png", "wb").write(bytes([0xe6]) + b.getvalue())
PY
/usr/bin/python3 -c "
import sys; sys.path.insert(0, 'tests/serve'); import bomb_client as b
b.write_png(sys.argv[1], 37, 23, interlaced=True)" "$S/il.png"
{ printf '\x0c'; cat "$S/il.png"; } > $C/image/interlaced.png
# Weight import: checkpoints written by Debian's torch, Keras-layout HDF5 from h5py, hostile files.
mkdir -p $C/{pth,torch_pickle,keras_h5}
/usr/bin/python3 tests/tools/make_import_fixtures.py "$S/imp" --small
for f in tiny small evil_system short_storage beyond_storage absurd_size deep bad_memo; do cp "$S/imp/$f.pth" $C/pth/; done
for f in tiny small evil_system absurd_size; do
  /usr/bin/python3 -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]);
n = [i for i in z.namelist() if i.endswith('/data.pkl')][0]; open(sys.argv[2], 'wb').write(z.read(n))" \
    "$S/imp/$f.pth" "$C/torch_pickle/$f.pkl"
done
cp "$S/imp/tiny_keras.h5" "$S/imp/keras_resnet.h5" $C/keras_h5/
echo "seed corpora written to $C"
