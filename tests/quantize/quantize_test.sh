# mskx quantize end to end: a small DenseNet trained on a synthetic set,
# quantised with its training split, then compared with the fp32 model on the
# validation split (every study probability within 0.02, kappa and AUROC
# within 0.01); the int8 file works in predict (the C API), eval, bundles,
# ensembles and bench --model; training and ONNX export refuse it; corrupt
# int8 files fail with errors naming the problem.
source "$MSKX_ROOT/tests/lib.sh"
ARCH="densenet:growth=8,blocks=2-2,init=16,bn_size=2"
py() { /usr/bin/python3 - "$@"; }
"$MSKX_BIN" synth --out "$T/syn" --studies 200 --seed 11 --min-size 64 --max-size 96 --threads 2 >/dev/null 2>&1 ||
  { fail quantize_synth "mskx synth failed"; exit 0; }
DATA="$T/syn/MURA-v1.1"
"$MSKX_BIN" train --data "$DATA" --out "$T/run" --arch "$ARCH" --size 64 --batch 8 --threads 2 --loader-threads 2 \
  --seed 5 --lr 1e-3 --epochs 4 >/dev/null 2>"$T/train.err" ||
  { fail quantize_train "$(tail -c 300 "$T/train.err")"; exit 0; }
FP="$T/run/best.safetensors"
M8="$T/m8.safetensors"

# 1. Quantize: the file is written, reloaded and saved again with identical outputs.
check quantize_runs "$MSKX_BIN" quantize --model "$FP" --data "$DATA" --out "$M8" --calib 64 --threads 2
grep -q "identical outputs" "$T/out" && pass quantize_roundtrip_identical || fail quantize_roundtrip_identical "$(cat "$T/out")"
if py "$M8" "$FP" <<'PY'
import json, struct, sys
def header(p):
    raw = open(p, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), len(raw)
h8, n8 = header(sys.argv[1]); h32, n32 = header(sys.argv[2])
meta = h8["__metadata__"]
assert meta["quantization"] == "int8" and meta["format"] == "mskx-model-1", meta
cal = json.loads(meta["calibration"])
assert cal["images"] == 64 and cal["split"] == "train" and cal["statistic"] == "max" and cal["date"], cal
assert cal["source"].endswith("MURA-v1.1"), cal
w = h8["features.denseblock1.denselayer1.conv1.weight"]
assert w["dtype"] == "I8", w
assert h8["features.denseblock1.denselayer1.conv1.weight_scale"]["shape"] == [w["shape"][0]]
assert h8["features.denseblock1.denselayer1.conv1.input_scale"]["shape"] == [1]
assert h8["features.conv0.weight"]["dtype"] == "F32"   # the stem stays fp32
assert n8 < n32, (n8, n32)
PY
then pass quantize_file_records_calibration; else fail quantize_file_records_calibration "metadata/tensors check failed"; fi

# 2. Accuracy on the validation split against the fp32 model. 200 studies
#    give 30 validation studies: with the 18 of 120 studies, one swapped
#    abnormal/normal pair moved AUROC by 1/77 = 0.013 although no study moved
#    more than 0.001 (AUROC's granularity, not the quantisation).
check eval_fp32 "$MSKX_BIN" eval --model "$FP" --data "$DATA" --out "$T/e32" --bootstrap 0 --no-report --threads 2
check eval_int8 "$MSKX_BIN" eval --model "$M8" --data "$DATA" --out "$T/e8" --bootstrap 0 --no-report --threads 2
if py "$T/e32" "$T/e8" <<'PY'
import csv, json, sys
def probs(d): return {r["study"]: float(r["probability"]) for r in csv.DictReader(open(d + "/probabilities.csv"))}
def metric(d, k):
    v = json.load(open(d + "/metrics.json"))["overall"][k]
    return v["value"] if isinstance(v, dict) else v
a, b = probs(sys.argv[1]), probs(sys.argv[2])
assert a.keys() == b.keys() and len(a) >= 25, (len(a), len(b))
worst = max(abs(a[k] - b[k]) for k in a)
dk = abs(metric(sys.argv[1], "kappa") - metric(sys.argv[2], "kappa"))
da = abs(metric(sys.argv[1], "auc") - metric(sys.argv[2], "auc"))
print("# %d studies: max |p_int8 - p_fp32| %.5f, |d kappa| %.4f, |d auroc| %.4f" % (len(a), worst, dk, da))
assert worst <= 0.02 and dk <= 0.01 and da <= 0.01, (worst, dk, da)
PY
then pass int8_accuracy_within_bounds; else fail int8_accuracy_within_bounds "see the lines above"; fi

# 3. Everywhere a model works: predict (through the C API) with maps, a
#    bundle, an ensemble with the fp32 model, bench --model.
STUDY=$(ls -d "$DATA"/valid/*/*/* | head -1)
check predict_int8_cam "$MSKX_BIN" predict --model "$M8" --cam "$T/cam" "$STUDY"
[ -n "$(ls "$T/cam" 2>/dev/null)" ] && pass predict_int8_writes_maps || fail predict_int8_writes_maps "no CAM files"
printf '{"format": "mskx-bundle-1", "models": {"XR_ELBOW": "m8.safetensors"}, "default": "m8.safetensors"}\n' > "$T/b.json"
cp "$FP" "$T/fp.safetensors"
printf '{"format": "mskx-ensemble-1", "method": "mean", "threshold": 0.5, "members": [{"path": "m8.safetensors"}, {"path": "fp.safetensors"}]}\n' > "$T/ens.json"
check eval_int8_bundle "$MSKX_BIN" eval --model "$T/b.json" --data "$DATA" --out "$T/eb" --bootstrap 0 --no-report --threads 2
check eval_int8_ensemble "$MSKX_BIN" eval --model "$T/ens.json" --data "$DATA" --out "$T/ee" --bootstrap 0 --no-report --threads 2
if py "$T/e8" "$T/eb" <<'PY'
import csv, sys
def probs(d): return {r["study"]: float(r["probability"]) for r in csv.DictReader(open(d + "/probabilities.csv"))}
a, b = probs(sys.argv[1]), probs(sys.argv[2])
assert a == b, "the bundle of the int8 model differs from the model"
PY
then pass int8_bundle_same_as_model; else fail int8_bundle_same_as_model "probabilities differ"; fi
# mskx serve of the int8 file: its metadata in /v1/model, the probability of
# `mskx predict` from /v1/predict.
IMG=$(ls "$STUDY"/*.png | head -1)
"$MSKX_BIN" serve --model "$M8" --port 0 --threads 1 2> "$T/serve.log" &
spid=$!
url=""
for _ in $(seq 300); do
  url=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$T/serve.log" | sed 's/listening on //')
  [ -n "$url" ] && break
  kill -0 $spid 2>/dev/null || break
  sleep 0.1
done
if [ -n "$url" ] && curl -s --retry 20 --retry-connrefused --retry-delay 0 "$url/v1/model" > "$T/model.json" &&
   curl -s -F "images=@$IMG" "$url/v1/predict" > "$T/served.json" &&
   "$MSKX_BIN" predict --model "$M8" --json "$IMG" > "$T/pred.json" &&
   py "$T/model.json" "$T/served.json" "$T/pred.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); s = json.load(open(sys.argv[2])); p = json.load(open(sys.argv[3]))
assert m["metadata"]["quantization"] == "int8" and m["metadata"]["calibration"], m["metadata"].keys()
assert abs(s["probability"] - p[0]["probability"]) < 1e-9, (s["probability"], p[0]["probability"])
PY
then pass serve_int8; else fail serve_int8 "$(tail -c 300 "$T/serve.log")"; fi
kill $spid 2>/dev/null; wait $spid 2>/dev/null
check bench_model_int8 "$MSKX_BIN" bench --model "$M8" --iters 2 --warmup 1 --batch 2 --threads 2
grep -q '"precision":"int8"' "$T/out" && grep -q '"size":64' "$T/out" && pass bench_model_reports_int8 ||
  fail bench_model_reports_int8 "$(cat "$T/out")"
check bench_model_fp32 "$MSKX_BIN" bench --model "$FP" --iters 2 --warmup 1 --batch 2 --threads 2
grep -q '"precision":"fp32"' "$T/out" && pass bench_model_reports_fp32 || fail bench_model_reports_fp32 "$(cat "$T/out")"
check bench_arch_int8 "$MSKX_BIN" bench --arch "$ARCH" --size 64 --precision int8 --iters 2 --warmup 1 --batch 2 --threads 2

# 4. Where int8 cannot work, a clear refusal.
check_fails int8_not_trainable "cannot be trained" "$MSKX_BIN" bench --model "$M8" --mode train --iters 1 --batch 2
check_fails int8_not_pretrained "int8 \(quantised\) model cannot be imported or trained" \
  "$MSKX_BIN" train --data "$DATA" --out "$T/r2" --arch "$ARCH" --size 64 --epochs 1 --pretrained "$M8"
check_fails int8_no_onnx "cannot be exported to ONNX" "$MSKX_BIN" export --model "$M8" --onnx "$T/x.onnx"
check_fails quantize_twice "already an int8 model" "$MSKX_BIN" quantize --model "$M8" --data "$DATA" --out "$T/q.safetensors"
check_fails quantize_bad_statistic "--statistic must be max or pNN" "$MSKX_BIN" quantize --model "$FP" --data "$DATA" --out "$T/q.safetensors" --statistic p0

# 5. Corrupt int8 files: errors naming the problem, no crash.
corrupt() {  # corrupt OUT PYTHON-EXPRESSION-ON-(t, meta)
  py "$M8" "$1" "$2" <<'PY'
import sys, os
sys.path.insert(0, os.environ["MSKX_ROOT"] + "/tests/tools")
import numpy as np, json, struct
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n]); meta = hdr.pop("__metadata__")
t = {}
for k, v in hdr.items():
    a, b = v["data_offsets"]
    t[k] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype={"F32": np.float32, "I8": np.int8}[v["dtype"]]).reshape(v["shape"]).copy()
exec(sys.argv[3])
h, off, blobs = {"__metadata__": meta}, 0, []
for k, a in t.items():
    b = a.tobytes()
    h[k] = {"dtype": "I8" if a.dtype == np.int8 else "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
    off += len(b); blobs.append(b)
js = json.dumps(h).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(js)) + js + b"".join(blobs))
PY
}
C1="features.denseblock1.denselayer1.conv1"
corrupt "$T/c_zero.safetensors" "t['$C1.weight_scale'][3] = 0"
check_fails int8_zero_scale "conv1.weight_scale'\[3\] is 0 \(scales must be finite and positive\)" "$MSKX_BIN" predict --model "$T/c_zero.safetensors" "$STUDY"
corrupt "$T/c_nan.safetensors" "t['$C1.input_scale'][0] = np.nan"
check_fails int8_nan_scale "input_scale'\[0\] is nan" "$MSKX_BIN" predict --model "$T/c_nan.safetensors" "$STUDY"
corrupt "$T/c_missing.safetensors" "del t['$C1.input_scale']"
check_fails int8_missing_scale "tensor '$C1.input_scale' is missing" "$MSKX_BIN" predict --model "$T/c_missing.safetensors" "$STUDY"
corrupt "$T/c_shape.safetensors" "t['$C1.weight_scale'] = t['$C1.weight_scale'][:-1]"
check_fails int8_scale_shape "weight_scale' has 1 dims \([0-9]+ values\), needs \[[0-9]+\]" "$MSKX_BIN" predict --model "$T/c_shape.safetensors" "$STUDY"
corrupt "$T/c_float.safetensors" "t['$C1.weight'] = t['$C1.weight'].astype(np.float32) * 0.5 + 0.25"
check_fails int8_weights_not_quantised "not an 8-bit quantised weight" "$MSKX_BIN" predict --model "$T/c_float.safetensors" "$STUDY"
corrupt "$T/c_kind.safetensors" "meta['quantization'] = 'int4'"
check_fails int8_unknown_quantization "metadata 'quantization' is 'int4'" "$MSKX_BIN" predict --model "$T/c_kind.safetensors" "$STUDY"
corrupt "$T/c_resnet.safetensors" "meta['arch'] = 'resnet50'; del meta['quantization']"
check_fails quantize_resnet_refused "arch resnet50 is not supported: int8 inference is implemented for DenseNet archs only" \
  "$MSKX_BIN" quantize --model "$T/c_resnet.safetensors" --data "$DATA" --out "$T/rn8.safetensors"
head -c $(( $(stat -c %s "$M8") - 100 )) "$M8" > "$T/c_trunc.safetensors"
check_fails int8_truncated "reach past the [0-9]+-byte data section" "$MSKX_BIN" predict --model "$T/c_trunc.safetensors" "$STUDY"
