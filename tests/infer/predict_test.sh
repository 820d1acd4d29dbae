# End-to-end `mskx predict` on tiny random models written by PyTorch
# (tests/tools/infer_model.py): probabilities vs torchvision on the same
# weights, aggregation, flip TTA, bundles, table/JSON/CSV, CAM overlay PNGs,
# bad input; and the example program compiled against libmskx.a.
source "$MSKX_ROOT/tests/lib.sh"
py=/usr/bin/python3
tool="$MSKX_ROOT/tests/tools/infer_model.py"
A="densenet:growth=8,blocks=2-2,init=8,bn_size=2"
B="densenet:growth=4,blocks=1-2,init=8,bn_size=2"

if ! "$MSKX_BIN" predict --help >/dev/null 2>&1; then
  fail predict_registered "the mskx binary has no 'predict' command (cmd_predict not listed in main.c/cli.h)"
  exit 0
fi

# Fixtures: two models, three studies (64x64 images need no resizing, so
# PyTorch sees exactly what mskx sees), a single-image study, bad studies.
W="$T/MURA/valid/XR_WRIST/patient1/study1_positive"
H="$T/MURA/valid/XR_HAND/patient2/study1_negative"
mkdir -p "$W" "$H" "$T/empty" "$T/badstudy/XR_ELBOW" "$T/cams"
$py "$tool" make "$T/a.safetensors" "$A" --seed 3 --size 64 --threshold 0.5 &&
$py "$tool" make "$T/b.safetensors" "$B" --seed 4 --size 64 --threshold 0.3 &&
$py "$tool" png "$W/image1.png:64:64:1" "$W/image2.png:64:64:2" "$W/image10.png:64:64:10" "$H/image1.png:64:64:21" \
  "$H/image2.png:64:64:22" "$T/single.png:64:64:31" "$T/wide.png:90:40:32" &&
cp "$W/image1.png" "$W/.hidden.png" && echo notes > "$W/notes.txt" &&
cp "$H/image1.png" "$T/badstudy/XR_ELBOW/ok.png" && head -c 200 "$H/image2.png" > "$T/badstudy/XR_ELBOW/corrupt.png" &&
printf '{"format": "mskx-bundle-1", "models": {"XR_WRIST": "a.safetensors", "XR_HAND": "b.safetensors"}}' > "$T/bundle.json" ||
  { fail fixtures "could not create models or images with $py"; exit 0; }

ref() { $py "$tool" prob "$@"; }   # PyTorch probabilities, one per line

# JSON output: parts from the paths, natural image order (image2 before image10),
# hidden and non-image files ignored, probabilities vs PyTorch, mean aggregation.
check json_runs "$MSKX_BIN" predict --model "$T/a.safetensors" "$W" "$H" "$T/single.png" --json
cp "$T/out" "$T/a.json"
ref "$T/a.safetensors" "$W/image1.png" "$W/image2.png" "$W/image10.png" "$H/image1.png" "$H/image2.png" "$T/single.png" > "$T/a.ref"
check json_matches_pytorch $py - "$T/a.json" "$T/a.ref" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1])); ref = [float(x) for x in open(sys.argv[2])]
assert len(s) == 3, s
assert [x["part"] for x in s] == ["XR_WRIST", "XR_HAND", None], [x["part"] for x in s]
names = [i["path"].rsplit("/", 1)[1] for i in s[0]["images"]]
assert names == ["image1.png", "image2.png", "image10.png"], names
probs = [i["probability"] for x in s for i in x["images"]]
assert max(abs(a - b) for a, b in zip(probs, ref)) < 1e-4, (probs, ref)
for x in s:
    p = [i["probability"] for i in x["images"]]
    assert abs(x["probability"] - sum(p) / len(p)) < 1e-9
    assert x["abnormal"] == (x["probability"] > x["threshold"]) and x["threshold"] == 0.5
    assert x["decision"] == ("abnormal" if x["abnormal"] else "normal") and x["n_images"] == len(p)
EOF

# Max aggregation and flip TTA against PyTorch.
check agg_max_runs "$MSKX_BIN" predict --model "$T/a.safetensors" "$W" --json --agg max
cp "$T/out" "$T/max.json"
check agg_max_is_max $py -c '
import json, sys; x = json.load(open(sys.argv[1]))[0]
assert abs(x["probability"] - max(i["probability"] for i in x["images"])) < 1e-12' "$T/max.json"
$py -c 'import sys; from PIL import Image, ImageOps; ImageOps.mirror(Image.open(sys.argv[1])).save(sys.argv[2])' \
  "$T/single.png" "$T/single_mirror.png"
check tta_runs "$MSKX_BIN" predict --model "$T/a.safetensors" "$T/single.png" --json --tta flip
cp "$T/out" "$T/tta.json"
ref "$T/a.safetensors" "$T/single.png" "$T/single_mirror.png" > "$T/tta.ref"
check tta_is_mean_of_image_and_mirror $py -c '
import json, sys; x = json.load(open(sys.argv[1]))[0]; r = [float(v) for v in open(sys.argv[2])]
assert abs(r[0] - r[1]) > 1e-6 and abs(x["probability"] - (r[0] + r[1]) / 2) < 1e-4, (x, r)' "$T/tta.json" "$T/tta.ref"

# Bundle: each study goes to its part's model and decides with its threshold.
check bundle_runs "$MSKX_BIN" predict --model "$T/bundle.json" "$W" "$H" --json
cp "$T/out" "$T/bundle.out"
ref "$T/b.safetensors" "$H/image1.png" "$H/image2.png" > "$T/b.ref"
check bundle_routes_by_part $py -c '
import json, sys
s = json.load(open(sys.argv[1])); a = json.load(open(sys.argv[2])); rb = [float(v) for v in open(sys.argv[3])]
assert abs(s[0]["probability"] - a[0]["probability"]) < 1e-12 and s[0]["threshold"] == 0.5
assert abs(s[1]["probability"] - sum(rb) / 2) < 1e-4 and abs(s[1]["threshold"] - 0.3) < 1e-12
assert s[1]["model"].endswith("b.safetensors")' "$T/bundle.out" "$T/a.json" "$T/b.ref"
check_fails bundle_unknown_part "no model for part XR_ELBOW" "$MSKX_BIN" predict --model "$T/bundle.json" "$T/single.png" --part XR_ELBOW

# Table and CSV.
check table_runs "$MSKX_BIN" predict --model "$T/a.safetensors" "$W" "$H" --part wrist
cp "$T/out" "$T/table.out"
check table_has_rows $py -c '
import sys; lines = open(sys.argv[1]).read().splitlines()
assert lines[0].split()[:3] == ["study", "part", "images"], lines[0]
rows = [l for l in lines[1:] if not l.startswith(" ")]
assert len(rows) == 2 and all(r.split()[1] == "XR_WRIST" for r in rows), lines
assert len([l for l in lines if l.startswith("    ")]) == 5
for r in rows: assert 0 <= float(r.split()[3]) <= 1 and r.split()[4] in ("normal", "abnormal")' "$T/table.out"
check csv_runs "$MSKX_BIN" predict --model "$T/a.safetensors" "$W" "$H" "$T/single.png" --csv
cp "$T/out" "$T/csv.out"
check csv_parses $py -c '
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1]))); s = json.load(open(sys.argv[2]))
assert len(rows) == 3 and list(rows[0]) == ["study", "part", "n_images", "probability", "decision"]
for r, x in zip(rows, s):
    assert abs(float(r["probability"]) - x["probability"]) < 1e-8 and int(r["decision"]) == int(x["abnormal"])
    assert int(r["n_images"]) == x["n_images"] and r["part"] == (x["part"] or "")' "$T/csv.out" "$T/a.json"

# CAM overlays: one RGB PNG per image at the image's own size.
check cam_runs "$MSKX_BIN" predict --model "$T/a.safetensors" "$W" "$T/wide.png" --cam "$T/cams" --json
cp "$T/out" "$T/cam.json"
check cam_pngs_have_image_sizes $py -c '
import json, os, sys; from PIL import Image
s = json.load(open(sys.argv[1])); paths = [i["cam"] for x in s for i in x["images"]]
assert len(paths) == 4 and len(set(paths)) == 4 and sorted(os.listdir(sys.argv[2])) == sorted(os.path.basename(p) for p in paths)
for x in s:
    for i in x["images"]:
        a, b = Image.open(i["cam"]), Image.open(i["path"])
        assert a.mode == "RGB" and a.size == b.size, (i, a.size, b.size)
assert any("study1_positive__image10" in p for p in paths)' "$T/cam.json" "$T/cams"

# Bad input.
check_fails missing_model "nope.safetensors" "$MSKX_BIN" predict --model "$T/nope.safetensors" "$W"
check_fails not_a_model "not an mskx model, bundle or ensemble" "$MSKX_BIN" predict --model "$W/notes.txt" "$W"
check_fails missing_study "does-not-exist" "$MSKX_BIN" predict --model "$T/a.safetensors" "$T/does-not-exist"
check_fails empty_study "no .png/.jpg/.jpeg/.dcm images" "$MSKX_BIN" predict --model "$T/a.safetensors" "$T/empty"
check_fails corrupt_image "corrupt.png" "$MSKX_BIN" predict --model "$T/a.safetensors" "$T/badstudy/XR_ELBOW" "$W"
cp "$T/out" "$T/corrupt.out"
check corrupt_study_does_not_stop_others grep -q "study1_positive" "$T/corrupt.out"
"$MSKX_BIN" predict --model "$T/a.safetensors" "$T/badstudy/XR_ELBOW" "$W" --json > "$T/bad.json" 2>/dev/null
check json_reports_failed_study $py -c '
import json, sys; s = json.load(open(sys.argv[1]))
assert "corrupt.png" in s[0]["error"] and s[1]["probability"] >= 0' "$T/bad.json"
check_fails bad_agg "--agg" "$MSKX_BIN" predict --model "$T/a.safetensors" "$W" --agg median
check_fails bad_tta "--tta" "$MSKX_BIN" predict --model "$T/a.safetensors" "$W" --tta rotate
check_fails no_paths "no study" "$MSKX_BIN" predict --model "$T/a.safetensors"
check_fails no_model "--model is required" "$MSKX_BIN" predict "$W"
check_fails json_and_csv "exclusive" "$MSKX_BIN" predict --model "$T/a.safetensors" "$W" --json --csv
"$MSKX_BIN" predict --model "$T/a.safetensors" "$W" --agg median >/dev/null 2>&1
[ $? = 2 ] && pass usage_error_exit_2 || fail usage_error_exit_2 "expected exit status 2"

# The example program, compiled against the installed header and libmskx.a only.
build="${MSKX_BUILD:-$MSKX_ROOT/build}"
libs="$(pkg-config --libs spng libjpeg libcjson cairo libmicrohttpd zlib) -lgdcmMSFF -lgdcmDSED -lgdcmCommon -lstdc++ -ldnnl -fopenmp -lpthread -lm"
# A sanitizer build of the library needs the sanitizer runtimes at link time.
grep -q '^MSKX_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null && libs="$libs -fsanitize=address,undefined"
check example_compiles cc -std=c11 -Wall -Wextra -Werror -I"$MSKX_ROOT/include" "$MSKX_ROOT/examples/predict_study.c" \
  "$build/libmskx.a" $libs -o "$T/predict_study"
check example_runs "$T/predict_study" "$T/a.safetensors" "$W/image1.png" "$W/image2.png"
cp "$T/out" "$T/example.out"
check example_output $py -c '
import json, sys; out = open(sys.argv[1]).read(); ref = [float(v) for v in open(sys.argv[2])]
p = float(out.split("study: probability ")[1].split(",")[0])
assert abs(p - (ref[0] + ref[1]) / 2) < 1e-4 and "part XR_WRIST" in out, out' "$T/example.out" "$T/a.ref"
check_fails example_reports_errors "nope.safetensors" "$T/predict_study" "$T/nope.safetensors" "$W/image1.png"

# The batched engine: a folder of studies predicted in one call (studies
# gathered into forward passes of 5 inputs, 3 decoder threads) equals each
# study predicted alone, in the order given; bad studies among them (a
# corrupt image, an empty folder, a missing path) are reported in place and
# the others answered. Tolerance 2e-5: oneDNN may pick another convolution
# algorithm for another batch size (docs/predict.md).
many=()
for s in $(seq 1 12); do
  d="$T/many/XR_WRIST/patient$s/study1_negative"
  mkdir -p "$d"
  specs=()
  for i in $(seq 1 $(( 1 + s % 3 ))); do specs+=("$d/image$i.png:$(( 50 + 3 * s )):$(( 70 - 4 * i )):$(( 100 * s + i ))"); done
  $py "$tool" png "${specs[@]}" || { fail many_fixtures "could not write images"; break; }
  many+=("$d")
done
mkdir -p "$T/many/XR_WRIST/empty"
many=("${many[@]:0:4}" "$T/badstudy/XR_ELBOW" "${many[@]:4:4}" "$T/many/XR_WRIST/empty" "$T/many/missing" "${many[@]:8}")
"$MSKX_BIN" predict --model "$T/a.safetensors" --json --max-batch 5 --decode-threads 3 "${many[@]}" > "$T/many.json" 2> "$T/many.err"
[ $? = 1 ] && pass many_exit_1_for_failed_studies || fail many_exit_1_for_failed_studies "expected exit status 1"
check many_counts_failures grep -q "3 of 15 studies failed" "$T/many.err"
for p in "${many[@]}"; do "$MSKX_BIN" predict --model "$T/a.safetensors" --json "$p" 2>/dev/null; done > "$T/alone.json"
check many_equal_alone_in_order $py - "$T/many.json" "$T/alone.json" "${many[@]}" <<'PYEOF'
import json, sys
batched = json.load(open(sys.argv[1])); paths = sys.argv[3:]
dec = json.JSONDecoder(); text = open(sys.argv[2]).read(); alone = []; i = 0
while i < len(text):
    if text[i].isspace(): i += 1; continue
    v, i = dec.raw_decode(text, i); alone += v
assert [x["study"] for x in batched] == paths, [x["study"] for x in batched]
assert [x["study"] for x in alone] == paths
errors = [k for k, x in enumerate(batched) if "error" in x]
assert errors == [4, 9, 10], errors
assert "corrupt.png" in batched[4]["error"] and "no .png" in batched[9]["error"] and "missing" in batched[10]["error"]
for b, a in zip(batched, alone):
    assert ("error" in b) == ("error" in a) and b.get("error") == a.get("error"), (b, a)
    if "error" in b: continue
    assert abs(b["probability"] - a["probability"]) < 2e-5, (b, a)
    assert [i["path"] for i in b["images"]] == [i["path"] for i in a["images"]]
    assert all(abs(x["probability"] - y["probability"]) < 2e-5 for x, y in zip(b["images"], a["images"]))
    assert b["part"] == a["part"] == "XR_WRIST" and b["n_images"] == a["n_images"]
PYEOF
"$MSKX_BIN" predict --model "$T/a.safetensors" --csv --max-batch 5 "${many[@]}" > "$T/many.csv" 2>/dev/null
check many_csv_in_order $py -c '
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1]))); b = [x for x in json.load(open(sys.argv[2])) if "error" not in x]
assert [r["study"] for r in rows] == [x["study"] for x in b], rows' "$T/many.csv" "$T/many.json"
check_fails bad_decode_threads "--decode-threads" "$MSKX_BIN" predict --model "$T/a.safetensors" "$W" --decode-threads 0
