# DICOM input end to end: fixtures from synthetic phantoms (pydicom for the
# uncompressed variants, DCMTK and GDCM's tools for every other transfer
# syntax), mskx's 8-bit rendering against pydicom's (GDCM handler,
# apply_modality_lut/apply_voi_lut) within 1 grey level, predict on a DICOM
# equal to predict on the same image as PNG, hostile files refused with
# clear errors, and no patient identifier in any message.
source "$MSKX_ROOT/tests/lib.sh"
source "$MSKX_ROOT/tests/serve/serve_lib.sh"
py=/usr/bin/python3
fixtures="$MSKX_ROOT/tests/io/dicom_fixtures.py"
for tool in dcmconv dcmcjpeg dcmcjpls dcmcrle gdcmconv; do
  command -v $tool >/dev/null || { fail dicom_tools "$tool missing (scripts/setup --test installs dcmtk and libgdcm-tools)"; exit 0; }
done
S="$T/src" C="$T/c" H="$T/h"
mkdir -p "$C"
"$MSKX_BIN" synth --out "$T/syn" -n 14 --min-size 96 --max-size 128 -j 1 >/dev/null 2>&1 &&
phantom=$(find "$T/syn" -name 'image1.png' | sort | head -1) &&
$py "$fixtures" make "$S" "$phantom" || { fail dicom_fixtures "could not write fixtures with pydicom"; exit 0; }

# Every supported transfer syntax, from the 12-bit windowed phantom unless noted.
conv() { "$@" >/dev/null 2>&1 || echo "conversion failed: $*" >&2; }
conv dcmconv +tb "$S/u12_window.dcm" "$C/explicit_big_endian.dcm"
conv dcmconv +td "$S/u12_window.dcm" "$C/deflated.dcm"
conv dcmcjpeg +eb "$S/u8_auto.dcm" "$C/jpeg_baseline.dcm"
conv dcmcjpeg +eb "$S/rgb.dcm" "$C/jpeg_baseline_ybr422.dcm"
conv dcmcjpeg +ee "$S/u12_window.dcm" "$C/jpeg_extended_12bit.dcm"
conv dcmcjpeg +el "$S/u12_window.dcm" "$C/jpeg_lossless_p14.dcm"
conv dcmcjpeg +e1 "$S/u12_window.dcm" "$C/jpeg_lossless_sv1.dcm"
conv dcmcjpls "$S/u12_window.dcm" "$C/jpegls_lossless.dcm"
conv dcmcjpls "$S/mono1_rescale_implicit.dcm" "$C/jpegls_mono1.dcm"
conv dcmcjpls +en +md 3 "$S/u12_window.dcm" "$C/jpegls_near_lossless.dcm"
conv gdcmconv --jpegls "$S/multiframe.dcm" "$C/jpegls_multiframe.dcm"
conv gdcmconv --j2k "$S/u12_window.dcm" "$C/j2k_lossless.dcm"
conv gdcmconv --j2k --lossy --irreversible "$S/u12_window.dcm" "$C/j2k_lossy.dcm"
conv gdcmconv --j2k --lossy -r 10 "$S/u12_window.dcm" "$C/j2k_lossy_overshoot.dcm"
conv gdcmconv --j2k "$S/multiframe.dcm" "$C/j2k_multiframe.dcm"
conv gdcmconv --j2k "$S/rgb.dcm" "$C/j2k_rgb.dcm"
conv dcmcrle "$S/u12_window.dcm" "$C/rle.dcm"
conv dcmcrle "$S/signed_linear_exact.dcm" "$C/rle_signed.dcm"
conv dcmcrle "$S/rgb.dcm" "$C/rle_rgb.dcm"
n_c=$(ls "$C"/*.dcm | wc -l)
[ "$n_c" = 19 ] && pass dicom_conversions || fail dicom_conversions "$n_c of 19 compressed fixtures written"

# Reference pixels and mskx's rendering, compared fixture by fixture.
$py -W ignore "$fixtures" ref "$S" "$C" 2>"$T/ref.err" || fail dicom_reference "$(tail -3 "$T/ref.err")"
check dicom_render "$MSKX_BIN" dicom render "$S"/*.dcm "$C"/*.dcm --out "$T/png"
[ -s "$T/err" ] && fail dicom_render_silent "stderr: $(head -c 300 "$T/err")" || pass dicom_render_silent
$py "$fixtures" compare "$S" "$T/png" | tee "$T/cmp"
$py "$fixtures" compare "$C" "$T/png" | tee -a "$T/cmp"

# The transfer syntax each fixture really has.
for f in "$C"/*.dcm; do
  "$MSKX_BIN" dicom info "$f" | $py -c 'import json,sys; d=json.load(sys.stdin); print(d["file"].rsplit("/",1)[1], d["transfer_syntax"])'
done > "$T/syntaxes"
want="1.2.840.10008.1.2.2 1.2.840.10008.1.2.1.99 1.2.840.10008.1.2.4.50 1.2.840.10008.1.2.4.51 1.2.840.10008.1.2.4.57 1.2.840.10008.1.2.4.70 1.2.840.10008.1.2.4.80 1.2.840.10008.1.2.4.81 1.2.840.10008.1.2.4.90 1.2.840.10008.1.2.4.91 1.2.840.10008.1.2.5"
missing=""
for u in $want; do grep -q " $u\$" "$T/syntaxes" || missing="$missing $u"; done
[ -z "$missing" ] && pass dicom_all_syntaxes_covered || fail dicom_all_syntaxes_covered "no fixture for$missing"

# Header summary: part from BodyPartExamined / StudyDescription, no patient identifiers.
check dicom_info "$MSKX_BIN" dicom info "$S/u12_window.dcm" "$S/u8_auto.dcm" "$S/u16_auto.dcm"
grep -q '"mura_part":"XR_WRIST"' "$T/out" && grep -q '"mura_part":"XR_ELBOW"' "$T/out" && grep -q '"mura_part":"XR_HAND"' "$T/out" &&
  pass dicom_info_parts || fail dicom_info_parts "$(head -c 300 "$T/out")"

# Window options: a fixed window overrides the file's; minmax for a file without one.
check dicom_window_fixed "$MSKX_BIN" dicom render "$S/u12_window.dcm" --dicom-window 1000,500 --out "$T/fixed"
$py - "$S/u12_window.dcm" "$T/fixed/u12_window.png" <<'EOF' && pass dicom_window_fixed_values || fail dicom_window_fixed_values "fixed window differs"
import sys, numpy as np, pydicom
from PIL import Image
from pydicom.pixel_data_handlers.util import apply_voi_lut
ds = pydicom.dcmread(sys.argv[1]); ds.WindowCenter, ds.WindowWidth = 1000, 500
y = apply_voi_lut(ds.pixel_array, ds) / 4095.0 * 255
ref = np.clip(np.floor(y + 0.5), 0, 255)
got = np.asarray(Image.open(sys.argv[2]))
sys.exit(0 if np.abs(got - ref).max() <= 1 else 1)
EOF
check dicom_window_minmax "$MSKX_BIN" dicom render "$S/u16_auto.dcm" --dicom-window minmax --out "$T/minmax"
$py - "$S/u16_auto.dcm" "$T/minmax/u16_auto.png" "$fixtures" <<'EOF' && pass dicom_window_minmax_values || fail dicom_window_minmax_values "minmax window differs"
import sys, numpy as np, pydicom, importlib.util
from PIL import Image
spec = importlib.util.spec_from_file_location('fx', sys.argv[3]); fx = importlib.util.module_from_spec(spec); spec.loader.exec_module(fx)
ref = fx.reference(pydicom.dcmread(sys.argv[1]), minmax=True)[0]
sys.exit(0 if np.abs(np.asarray(Image.open(sys.argv[2])).astype(int) - ref).max() <= 1 else 1)
EOF
check_fails dicom_window_bad "dicom-window: expected auto, minmax or CENTER,WIDTH" "$MSKX_BIN" dicom render "$S/u12_window.dcm" --dicom-window 10,0 --out "$T/x"
check_fails dicom_frames_bad "dicom-frames: expected all or first" "$MSKX_BIN" dicom render "$S/u12_window.dcm" --dicom-frames 2 --out "$T/x"
check dicom_frames_first "$MSKX_BIN" dicom render "$S/multiframe.dcm" --dicom-frames first --out "$T/first"
[ "$(ls "$T/first")" = "multiframe.png" ] && pass dicom_frames_first_one_image || fail dicom_frames_first_one_image "$(ls "$T/first")"

# Hostile files: clear errors, no crash, no patient identifiers.
$py "$fixtures" hostile "$S" "$H" || fail dicom_hostile_fixtures "could not write hostile files"
declare -A expect=(
  [truncated_header]="truncated element header" [truncated_pixels]="runs past the end of the file"
  [truncated_meta]="no Transfer Syntax UID" [lying_length]="element \\(0028,0010\\) of 65520 bytes runs past the end of the file"
  [lying_pixel_length]="runs past the end of the file" [huge_dimensions]="65535x65535 pixels, above the limit"
  [short_pixel_data]="pixel data holds [0-9]+ bytes, the header declares" [bad_vr]="has an invalid VR"
  [wrong_vr_length]="Rows has length 4, expected 2" [nested_10000]="nested deeper than 32 levels"
  [unsupported_syntax]="transfer syntax 1.2.840.10008.1.2.4.100 is not supported"
  [j2k_lying_size]="JPEG 2000 codestream declares 60000x60000" [jpeg_lying_size]="JPEG codestream declares [0-9]+x30000"
  [jpeg_corrupt]="could not be decoded" [jpegls_corrupt]="could not be decoded"
  [rle_bad_header]="RLE header has 9 segments" [not_an_image]="no pixel data")
for k in "${!expect[@]}"; do
  check_fails "dicom_hostile_$k" "/$k.dcm: .*${expect[$k]}" "$MSKX_BIN" dicom render "$H/$k.dcm" --out "$T/hp"
done
# A corrupt JPEG 2000 stream has no checksums to fail: it must decode to something or fail, never crash.
"$MSKX_BIN" dicom render "$H/j2k_corrupt.dcm" --out "$T/hp" >/dev/null 2>&1
[ $? -lt 128 ] && pass dicom_hostile_j2k_corrupt || fail dicom_hostile_j2k_corrupt "crashed"
"$MSKX_BIN" dicom render "$H"/*.dcm "$S"/*.dcm --out "$T/hp" > "$T/all.out" 2>&1
if grep -Eq "Secretname|PID-SECRET" "$T/all.out" "$T/out"; then fail dicom_no_patient_ids "a message names the patient"; else pass dicom_no_patient_ids; fi

# predict: a DICOM file gives exactly the probability of the same image as PNG
# after the same windowing; folders split by StudyInstanceUID; multi-frame files
# give one image per frame; the part comes from BodyPartExamined for bundles.
tool="$MSKX_ROOT/tests/tools/infer_model.py"
$py "$tool" make "$T/a.safetensors" "densenet:growth=4,blocks=1-1,init=8,bn_size=2" --seed 3 --size 64 --threshold 0.5 &&
$py "$tool" make "$T/b.safetensors" "densenet:growth=4,blocks=1-1,init=8,bn_size=2" --seed 4 --size 64 --threshold 0.5 ||
  { fail dicom_predict_models "could not write models"; exit 0; }
printf '{"format": "mskx-bundle-1", "models": {"XR_WRIST": "a.safetensors", "XR_HAND": "b.safetensors"}}' > "$T/bundle.json"
check dicom_predict_png_equal "$MSKX_BIN" predict --model "$T/a.safetensors" "$S/u12_window.dcm" "$S/u12_window_ref.png" --json
$py - "$T/out" <<'PY' && pass dicom_predict_png_equal_values || fail dicom_predict_png_equal_values "$(head -c 400 "$T/out")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s[0]["probability"] == s[1]["probability"], (s[0]["probability"], s[1]["probability"])
assert s[0]["study_uid"].startswith("1.2.826.0.1.3680043.10.1234."), s[0]
assert "study_uid" not in s[1]
PY
mkdir -p "$T/pacs"
cp "$S/u12_window.dcm" "$T/pacs/IM0001"; cp "$S/multiframe.dcm" "$T/pacs/IM0002.dcm"; cp "$S/other_study_foot.dcm" "$T/pacs/IM0003"
"$MSKX_BIN" predict --model "$T/bundle.json" "$T/pacs" --json > "$T/pacs.json" 2> "$T/err"
[ $? = 1 ] && pass dicom_predict_folder_exit_1 || fail dicom_predict_folder_exit_1 "one of two studies must fail (unknown part)"
$py - "$T/pacs.json" <<'PY' && pass dicom_predict_folder_studies || fail dicom_predict_folder_studies "$(head -c 600 "$T/pacs.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert len(s) == 2, s
a, b = s
assert "@" in a["study"] and "@" in b["study"], s
assert a["n_images"] == 4 and a["part"] == "XR_WRIST" and a["part_source"] == "dicom", a  # 1 + 3 frames
assert [i["path"].rsplit("/", 1)[1] for i in a["images"]] == ["IM0001", "IM0002.dcm#1", "IM0002.dcm#2", "IM0002.dcm#3"], a
assert "error" in b and "FOOT" not in b["study"], b   # unknown part: reported, not guessed
PY
grep -q "body part is unknown" "$T/err" && pass dicom_predict_unknown_part_reported || fail dicom_predict_unknown_part_reported "$(head -c 300 "$T/err")"
# Structured Reports: one per DICOM study, read back by DCMTK (dsrdump, dcmdump) and pydicom.
check dicom_predict_sr "$MSKX_BIN" predict --model "$T/a.safetensors" "$S/u12_window.dcm" "$S/multiframe.dcm" "$S/other_study_foot.dcm" --sr "$T/sr" --json
cp "$T/out" "$T/sr.json"
[ "$(ls "$T/sr" | wc -l)" = 3 ] && pass dicom_sr_one_per_study || fail dicom_sr_one_per_study "$(ls "$T/sr")"
for f in "$T"/sr/*.dcm; do dsrdump "$f" > "$f.txt" 2>&1 || echo "dsrdump failed on $f"; done > "$T/dsr.log"
[ -s "$T/dsr.log" ] || ! grep -q '^[EW]:' "$T"/sr/*.txt && pass dicom_sr_dsrdump_clean || fail dicom_sr_dsrdump_clean "$(cat "$T/dsr.log"; grep -h '^[EW]:' "$T"/sr/*.txt | head -3)"
dcmdump "$T"/sr/*.dcm > /dev/null 2>&1 && pass dicom_sr_dcmdump || fail dicom_sr_dcmdump "dcmdump failed"
$py - "$T/sr.json" "$S" <<'PY' && pass dicom_sr_values || fail dicom_sr_values "see log"
import json, sys, pydicom
res, S = json.load(open(sys.argv[1])), sys.argv[2]
for r in res:
    sr = pydicom.dcmread(r["sr"])
    src = pydicom.dcmread(r["images"][0]["path"].split("#")[0])
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33" and sr.Modality == "SR"
    assert sr.StudyInstanceUID == src.StudyInstanceUID == r["study_uid"]
    assert sr.SeriesInstanceUID != src.SeriesInstanceUID and sr.SOPInstanceUID != src.SOPInstanceUID
    assert sr.PatientName == src.PatientName and sr.PatientID == src.PatientID and sr.PatientBirthDate == src.PatientBirthDate
    items = {i.ConceptNameCodeSequence[0].CodeMeaning: i for i in sr.ContentSequence if i.ValueType != "IMAGE"}
    assert abs(float(items["Probability of abnormality"].MeasuredValueSequence[0].NumericValue) - r["probability"]) < 1e-6
    assert abs(float(items["Decision threshold"].MeasuredValueSequence[0].NumericValue) - r["threshold"]) < 1e-6
    assert items["Abnormality decision"].TextValue == r["decision"]
    assert "a.safetensors" in items["Algorithm Name"].TextValue
    refs = [i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in sr.ContentSequence if i.ValueType == "IMAGE"]
    assert refs == [src.SOPInstanceUID], refs
    ev = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert ev.StudyInstanceUID == src.StudyInstanceUID
    assert ev.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
PY
check dicom_predict_first_frame "$MSKX_BIN" predict --model "$T/a.safetensors" "$S/multiframe.dcm" --dicom-frames first --json
grep -q '"n_images":[[:space:]]*1' "$T/out" && pass dicom_predict_first_frame_one || fail dicom_predict_first_frame_one "$(head -c 300 "$T/out")"
check dicom_predict_window "$MSKX_BIN" predict --model "$T/a.safetensors" "$S/u16_auto.dcm" --dicom-window minmax --csv
if grep -Eq "Secretname|PID-SECRET" "$T/pacs.json" "$T/out" "$T/err"; then fail dicom_predict_no_patient_ids "output names the patient"; else pass dicom_predict_no_patient_ids; fi

# serve: a DICOM body (application/dicom) and a multipart part of that type.
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
if serve_model="$T/bundle.json" start_server dicom_serve --quiet; then
  curl -s -H 'Content-Type: application/dicom' --data-binary @"$S/u12_window.dcm" "$url/v1/predict" > "$T/serve1.json"
  curl -s -F "images=@$S/multiframe.dcm;type=application/dicom" "$url/v1/predict?part=XR_HAND" > "$T/serve2.json"
  curl -s -H 'Content-Type: application/dicom' --data-binary @"$H/nested_10000.dcm" "$url/v1/predict" > "$T/serve3.json"
  curl -s -o "$T/serve_sr.dcm" -w '%{content_type}' -H 'Content-Type: application/dicom' --data-binary @"$S/u12_window.dcm" \
    "$url/v1/predict?format=sr" > "$T/serve_sr.type"
  grep -q application/dicom "$T/serve_sr.type" && dsrdump "$T/serve_sr.dcm" 2>&1 | grep -q 'Probability of abnormality")="' &&
    $py -c 'import sys, json, pydicom; d = pydicom.dcmread(sys.argv[1]); p = json.load(open(sys.argv[2]))["probability"]; assert abs(float(d.ContentSequence[0].MeasuredValueSequence[0].NumericValue) - p) < 1e-6, p' \
      "$T/serve_sr.dcm" "$T/serve1.json" && pass dicom_serve_sr || fail dicom_serve_sr "$(cat "$T/serve_sr.type"; head -c 200 "$T/serve_sr.dcm")"
  curl -s -H 'Content-Type: image/png' --data-binary @"$S/u12_window_ref.png" "$url/v1/predict?format=sr&part=XR_WRIST" > "$T/serve_sr_png.json"
  grep -q "needs DICOM images" "$T/serve_sr_png.json" && pass dicom_serve_sr_needs_dicom || fail dicom_serve_sr_needs_dicom "$(head -c 200 "$T/serve_sr_png.json")"
  $py - "$T/serve1.json" "$T/serve2.json" "$T/serve3.json" <<'PY' && pass dicom_serve || fail dicom_serve "$(head -c 300 "$T/serve1.json" "$T/serve2.json" "$T/serve3.json")"
import json, sys
a, b, c = (json.load(open(p)) for p in sys.argv[1:])
assert a["part"] == "XR_WRIST" and a["study_uid"].startswith("1.2.826.0.1.3680043.10.1234."), a
assert b["part"] == "XR_HAND" and len(b["images"]) == 3, b
assert "nested deeper" in c["error"], c
PY
  # The viewer in chromium with a MONOCHROME1 file and a multi-frame file (4 images).
  bdir="$MSKX_ROOT/tests/serve/browser"
  if browser_ready dicom_viewer_browser; then
    (cd "$bdir" && timeout 120 node viewer_dicom.mjs "$url" "$T/viewer_dicom.png" "$S/mono1_rescale_implicit.dcm" "$S/multiframe.dcm")
  fi
  kill "$pid"; wait "$pid" 2>/dev/null
fi

# mskx synth --format dicom: the same phantoms as the PNG dataset, in a mix of
# syntaxes; every windowed variant renders back to exactly the PNG's pixels;
# train and eval read the DICOM dataset end to end.
check dicom_synth "$MSKX_BIN" synth --out "$T/sd" -n 14 --min-size 48 --max-size 64 --format dicom -j 1
"$MSKX_BIN" synth --out "$T/sp" -n 14 --min-size 48 --max-size 64 -j 1 >/dev/null 2>&1
(cd "$T/sd" && find . -name '*.dcm' | sort) > "$T/sd.list"
while read -r f; do
  mkdir -p "$T/sdr/$(dirname "$f")"; "$MSKX_BIN" dicom render "$T/sd/$f" --out "$T/sdr/$(dirname "$f")" || echo "render failed: $f"
done < "$T/sd.list" > "$T/sdr.log" 2>&1
[ -s "$T/sdr.log" ] && fail dicom_synth_renders "$(head -c 300 "$T/sdr.log")" || pass dicom_synth_renders
$py - "$T/sd" "$T/sdr" "$T/sp" <<'PY' && pass dicom_synth_matches_png || fail dicom_synth_matches_png "see log"
import glob, sys, numpy as np, pydicom
from PIL import Image
sd, sdr, sp = sys.argv[1:]
syntaxes, exact = set(), 0
for f in sorted(glob.glob(sd + '/**/*.dcm', recursive=True)):
    rel = f[len(sd) + 1:-4]
    ds = pydicom.dcmread(f, stop_before_pixels=True)
    syntaxes.add(ds.file_meta.TransferSyntaxUID)
    got = np.asarray(Image.open(sdr + '/' + rel.rsplit('/', 1)[0] + '/' + rel.rsplit('/', 1)[1] + '.png')).astype(int)
    ref = np.asarray(Image.open(sp + '/' + rel + '.png').convert('L')).astype(int)
    if 'WindowCenter' in ds or ds.SamplesPerPixel == 3:
        assert np.array_equal(got, ref), (rel, np.abs(got - ref).max())
        exact += 1
assert len(syntaxes) >= 5 and exact >= 10, (syntaxes, exact)
PY
ARCH="densenet:growth=4,blocks=1-1,init=8,bn_size=2"
check dicom_synth_train "$MSKX_BIN" train --data "$T/sd/MURA-v1.1" --out "$T/run" --arch "$ARCH" --size 32 --batch 4 --threads 2 --epochs 1 --seed 1 --class-weights none --dicom-window auto
check dicom_synth_eval "$MSKX_BIN" eval --model "$T/run/best.safetensors" --data "$T/sd/MURA-v1.1" --out "$T/ev" --threads 2 --no-report --bootstrap 0
grep -q '"dicom_window"' "$T/run/config.json" && pass dicom_train_config_records_window || fail dicom_train_config_records_window "config.json has no dicom_window"
