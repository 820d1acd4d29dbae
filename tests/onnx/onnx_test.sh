# mskx export --onnx: every file passes onnx.checker (full_check) of Debian's
# python3-onnx, an independent protobuf reader; ONNX Runtime (npm
# onnxruntime-node, CPU) gives the probabilities of `mskx predict` within 1e-4
# on the same pixels, for every arch (random weights at small sizes;
# Inception-v3 with transform_input on and off), with and
# without --fold-bn, fixed and dynamic batch, opsets 13 and 17; bundles and
# ensembles as member files plus a combination JSON; bad options.
source "$MSKX_ROOT/tests/lib.sh"
py=/usr/bin/python3
tool="$MSKX_ROOT/tests/tools/infer_model.py"
chk="$MSKX_ROOT/tests/onnx/onnx_check.py"
ortdir="$MSKX_ROOT/tests/onnx/ort"

if ! $py -c 'import onnx' 2>/dev/null; then fail onnx_available "python3-onnx is missing (scripts/setup --test)"; exit 0; fi
ort=1
if ! command -v node >/dev/null; then
  fail ort_available "node is missing (scripts/setup --test installs it)"; ort=0
elif [ ! -d "$ortdir/node_modules/onnxruntime-node" ] &&
     ! (cd "$ortdir" && ONNXRUNTIME_NODE_INSTALL=skip ONNXRUNTIME_NODE_INSTALL_CUDA=skip \
          timeout 600 npm ci --no-audit --no-fund > "$T/npm.log" 2>&1); then
  fail ort_npm_ci "$(tail -c 400 "$T/npm.log")"; ort=0
fi

# run_ort NAME MODEL.onnx N S IMG...: input from the file's metadata, ONNX Runtime's outputs in $T/NAME.ort.
run_ort() {
  local name=$1 model=$2 n=$3 s=$4; shift 4
  $py "$chk" input "$model" "$T/$name.f32" "$@" &&
    node "$ortdir/run_ort.mjs" run "$model" "$T/$name.f32" "$n" "$s" > "$T/$name.ort" 2> "$T/$name.err" ||
    { fail "ort_runs_$name" "$(tail -c 300 "$T/$name.err")"; return 1; }
}

# Fixtures: one tiny DenseNet at 64 and every named arch at 32 (its smallest size).
S="$T/MURA/valid/XR_WRIST/patient1/study1_positive"
mkdir -p "$S"
$py "$tool" make "$T/tiny.safetensors" "densenet:growth=8,blocks=2-2,init=8,bn_size=2" --seed 3 --size 64 --threshold 0.4 &&
$py "$tool" make "$T/tiny2.safetensors" "densenet:growth=4,blocks=1-2,init=8,bn_size=2" --seed 4 --size 64 --threshold 0.3 &&
$py "$tool" png "$S/image1.png:64:64:1" "$S/image2.png:64:64:2" "$S/image3.png:64:64:3" \
  "$T/s1.png:32:32:5" "$T/s2.png:32:32:6" "$T/s3.png:32:32:7" ||
  { fail fixtures "could not create models or images with $py"; exit 0; }

# Tiny model: opsets, batch, folding.
for v in "plain:--opset 13" "fold:--fold-bn --opset 17" "b3:--batch 3" "fold_b3:--fold-bn --batch 3 --opset 21"; do
  tag=${v%%:*}; opts=${v#*:}
  check "export_tiny_$tag" "$MSKX_BIN" export --model "$T/tiny.safetensors" --onnx "$T/tiny_$tag.onnx" $opts
done
"$MSKX_BIN" predict --model "$T/tiny.safetensors" "$S" --json --threads 2 > "$T/tiny.json"
for tag in plain fold b3; do  # Debian's onnx knows opsets up to 17 only: fold_b3 (opset 21) is checked by ORT alone
  f=0; [[ $tag == fold* ]] && f=1
  $py "$chk" check "$T/tiny_$tag.onnx" "$T/tiny.safetensors" $f || fail "onnx_check_tiny_$tag" "onnx_check.py exited with $?"
done
if [ $ort = 1 ]; then
  for tag in plain fold b3 fold_b3; do
    run_ort "tiny_$tag" "$T/tiny_$tag.onnx" 3 64 "$S/image1.png" "$S/image2.png" "$S/image3.png" &&
      $py "$chk" compare "$T/tiny_$tag.ort" "$T/tiny.json" "ort_matches_predict_tiny_$tag"
  done
  # A fixed batch refuses another; a dynamic one takes any.
  $py "$chk" input "$T/tiny_b3.onnx" "$T/two.f32" "$S/image1.png" "$S/image2.png"
  node "$ortdir/run_ort.mjs" run "$T/tiny_b3.onnx" "$T/two.f32" 2 64 > /dev/null 2>&1 &&
    fail fixed_batch_is_fixed "batch 2 accepted by a --batch 3 model" || pass fixed_batch_is_fixed
  run_ort tiny_two "$T/tiny_plain.onnx" 2 64 "$S/image1.png" "$S/image2.png" &&
    check dynamic_batch_two $py -c 'import json,sys; assert len(json.load(open(sys.argv[1]))["probability"]) == 2' "$T/tiny_two.ort"
fi

# Every named arch, folded and not.
for arch in densenet121 densenet169 densenet201 resnet50; do
  $py "$tool" make "$T/$arch.safetensors" "$arch" --seed 7 --size 32 --calibrate || { fail "fixture_$arch" "torch"; continue; }
  "$MSKX_BIN" predict --model "$T/$arch.safetensors" "$T/s1.png" "$T/s2.png" "$T/s3.png" --json --threads 2 > "$T/$arch.json"
  for f in 0 1; do
    tag=$arch; opt=(); [ $f = 1 ] && { tag=${arch}_fold; opt=(--fold-bn); }
    check "export_$tag" "$MSKX_BIN" export --model "$T/$arch.safetensors" --onnx "$T/$tag.onnx" "${opt[@]}" || continue
    $py "$chk" check "$T/$tag.onnx" "$T/$arch.safetensors" $f || fail "onnx_check_$tag" "onnx_check.py exited with $?"
    [ $ort = 1 ] && run_ort "$tag" "$T/$tag.onnx" 3 32 "$T/s1.png" "$T/s2.png" "$T/s3.png" &&
      $py "$chk" compare "$T/$tag.ort" "$T/$arch.json" "ort_matches_predict_$tag"
  done
  rm -f "$T/$arch.safetensors" "$T/$arch.onnx" "$T/${arch}_fold.onnx"   # large: keep the scratch folder small
done

# Inception-v3 at its smallest inference size (75), transform_input on and off,
# folded and not: its own batch-norm epsilon (1e-3), the asymmetric 1x7/7x1
# and 1x3/3x1 convolutions, average pools counting the padding, the branch
# order of every Concat.
$py "$tool" png "$T/i1.png:75:75:5" "$T/i2.png:75:75:6" "$T/i3.png:75:75:7" || fail fixture_inception_images "png"
for ti in 1 0; do
  m="$T/inception_ti$ti.safetensors"
  $py "$tool" make "$m" inception_v3 --seed 7 --size 75 --calibrate --transform-input $ti ||
    { fail "fixture_inception_ti$ti" "torch"; continue; }
  "$MSKX_BIN" predict --model "$m" "$T/i1.png" "$T/i2.png" "$T/i3.png" --json --threads 2 > "$T/inception_ti$ti.json"
  for f in 0 1; do
    tag=inception_ti$ti; opt=(); [ $f = 1 ] && { tag=${tag}_fold; opt=(--fold-bn); }
    check "export_$tag" "$MSKX_BIN" export --model "$m" --onnx "$T/$tag.onnx" "${opt[@]}" || continue
    $py "$chk" check "$T/$tag.onnx" "$m" $f || fail "onnx_check_$tag" "onnx_check.py exited with $?"
    [ $ort = 1 ] && run_ort "$tag" "$T/$tag.onnx" 3 75 "$T/i1.png" "$T/i2.png" "$T/i3.png" &&
      $py "$chk" compare "$T/$tag.ort" "$T/inception_ti$ti.json" "ort_matches_predict_$tag"
  done
  # PyTorch itself (torchvision's Inception3 in float64) as the independent reference.
  [ $ort = 1 ] && $py "$tool" prob "$m" "$T/i1.png" "$T/i2.png" "$T/i3.png" > "$T/inception_ti$ti.torch" &&
    check "ort_matches_torch_inception_ti$ti" $py -c '
import json, sys
ort = json.load(open(sys.argv[1]))["probability"]
ref = [float(v) for v in open(sys.argv[2]).read().split()]
assert len(ort) == len(ref) == 3 and max(abs(a - b) for a, b in zip(ort, ref)) < 1e-4, (ort, ref)' \
      "$T/inception_ti$ti.ort" "$T/inception_ti$ti.torch"
  rm -f "$m" "$T/inception_ti$ti.onnx" "$T/inception_ti${ti}_fold.onnx"
done
check transform_input_changes_output $py -c '
import json, sys
p = [[i["probability"] for s in json.load(open(f)) for i in s["images"]] for f in sys.argv[1:]]
assert max(abs(a - b) for a, b in zip(*p)) > 1e-2, p' "$T/inception_ti1.json" "$T/inception_ti0.json"

# Bundle and ensemble: member files plus the combination JSON.
printf '{"format": "mskx-bundle-1", "models": {"XR_WRIST": "tiny.safetensors"}, "default": "tiny2.safetensors"}' > "$T/bundle.json"
printf '{"format": "mskx-ensemble-1", "method": "weighted", "threshold": 0.45, "members": [{"path": "tiny.safetensors", "weight": 1}, {"path": "bundle.json", "weight": 3}]}' > "$T/ens.json"
check_fails export_into_missing_folder "exp/b" "$MSKX_BIN" export --model "$T/bundle.json" --onnx "$T/exp/b.onnx"
mkdir -p "$T/exp"
check export_bundle "$MSKX_BIN" export --model "$T/bundle.json" --onnx "$T/exp/b.onnx"
check bundle_files $py -c '
import json, sys
j = json.load(open(sys.argv[1] + "/b.json"))
assert j["format"] == "mskx-onnx-combine-1" and j["root"]["kind"] == "bundle"
assert j["root"]["models"]["XR_WRIST"]["onnx"] == "b.XR_WRIST.onnx" and j["root"]["default"]["onnx"] == "b.default.onnx"
assert abs(j["root"]["models"]["XR_WRIST"]["threshold"] - 0.4) < 1e-12' "$T/exp"
check export_ensemble "$MSKX_BIN" export --model "$T/ens.json" --onnx "$T/exp/e.onnx" --fold-bn
check ensemble_files $py -c '
import json, os, sys
j = json.load(open(sys.argv[1] + "/e.json"))["root"]
assert j["kind"] == "ensemble" and j["method"] == "weighted" and abs(j["threshold"] - 0.45) < 1e-12
m = j["members"]
assert m[0]["onnx"] == "e.m1.onnx" and m[0]["weight"] == 1 and m[1]["kind"] == "bundle" and m[1]["weight"] == 3
assert m[1]["models"]["XR_WRIST"]["onnx"] == "e.m2.XR_WRIST.onnx" and m[1]["default"]["onnx"] == "e.m2.default.onnx"
for f in ("e.m1.onnx", "e.m2.XR_WRIST.onnx", "e.m2.default.onnx"): assert os.path.getsize(sys.argv[1] + "/" + f) > 1000' "$T/exp"
for f in "$T/exp/e.m1.onnx" "$T/exp/e.m2.XR_WRIST.onnx"; do $py "$chk" check "$f" "$T/tiny.safetensors" 1; done
$py "$chk" check "$T/exp/e.m2.default.onnx" "$T/tiny2.safetensors" 1
if [ $ort = 1 ]; then
  # The study probability of the ensemble, combined from ONNX Runtime's member outputs as e.json says.
  "$MSKX_BIN" predict --model "$T/ens.json" "$S" --json --threads 2 > "$T/ens_pred.json"
  run_ort e1 "$T/exp/e.m1.onnx" 3 64 "$S/image1.png" "$S/image2.png" "$S/image3.png" &&
  run_ort e2 "$T/exp/e.m2.XR_WRIST.onnx" 3 64 "$S/image1.png" "$S/image2.png" "$S/image3.png" &&
  check ensemble_combined_matches_predict $py -c '
import json, sys
t = sys.argv[1]
j = json.load(open(t + "/exp/e.json"))["root"]
p = [sum(json.load(open(t + "/%s.ort" % k))["probability"]) / 3 for k in ("e1", "e2")]  # image mean per member
w = [m["weight"] for m in j["members"]]
study = sum(a * b for a, b in zip(w, p)) / sum(w)
ref = json.load(open(t + "/ens_pred.json"))[0]
assert abs(study - ref["probability"]) < 1e-4, (study, ref["probability"])
assert all(abs(a - b) < 1e-4 for a, b in zip(p, ref["member_probabilities"])), (p, ref["member_probabilities"])' "$T"
fi

# Bad options and inputs.
check_fails bad_opset "opset.*13" "$MSKX_BIN" export --model "$T/tiny.safetensors" --onnx "$T/x.onnx" --opset 12
check_fails bad_batch "batch" "$MSKX_BIN" export --model "$T/tiny.safetensors" --onnx "$T/x.onnx" --batch 0
check_fails missing_model "nope.safetensors" "$MSKX_BIN" export --model "$T/nope.safetensors" --onnx "$T/x.onnx"
check_fails needs_onnx "--model and --onnx are required" "$MSKX_BIN" export --model "$T/tiny.safetensors"
check_fails unwritable_output "no-such-dir" "$MSKX_BIN" export --model "$T/tiny.safetensors" --onnx "$T/no-such-dir/x.onnx"
