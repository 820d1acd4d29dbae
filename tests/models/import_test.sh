# mskx import and train --pretrained with PyTorch .pth and Keras .h5 files:
# logits of the imported models against torchvision's (float64), the batch
# norm epsilon of Keras files, and hostile checkpoints refused with a clear
# error (never a crash, never code run). Fixtures: tests/tools/make_import_fixtures.py.
source "$MSKX_ROOT/tests/lib.sh"
D="$T/fx"
if ! /usr/bin/python3 "$MSKX_ROOT/tests/tools/make_import_fixtures.py" "$D" >"$T/py.log" 2>&1; then
  fail make_import_fixtures "$(tail -3 "$T/py.log")"; exit 0; fi
cmp_logits() {  # name ref ours [other-ref that must differ]
  /usr/bin/python3 - "$@" <<'EOF'
import sys
import numpy as np
name, ref, ours = sys.argv[1:4]
r, o = np.load(ref), np.load(ours)
err = float(np.abs(r - o).max()) if r.shape == o.shape else float("inf")
tol = 1e-4 * float(np.abs(r).max()) + 1e-5
ok = err <= tol
detail = "max |logit diff| %.3g tol %.3g" % (err, tol)
if len(sys.argv) > 4:
    gap = float(np.abs(np.load(sys.argv[4]) - r).max())
    ok = ok and gap > 10 * tol  # the other epsilon must be told apart
    detail += "; the other epsilon's logits differ by %.3g" % gap
print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
print("# %s: %s" % (name, detail))
EOF
}
while read -r name arch file ref; do
  out="$T/$name.safetensors"
  if ! "$MSKX_BIN" import "$D/$file" --arch "$arch" --out "$out" >"$T/imp.log" 2>&1; then
    fail "import_$name" "$(cat "$T/imp.log")"; continue; fi
  if ! "$MSKX_BIN" forward --arch "$arch" --weights "$out" --input "$D/x.npy" --output "$T/$name.npy" --threads 2 \
      2>"$T/err"; then fail "forward_$name" "$(cat "$T/err")"; continue; fi
  other=()
  [ "$name" = k121_weights_keras_eps ] && other=("$D/k121_weights_eps1e-5_ref.npy")
  cmp_logits "logits_$name" "$D/$ref" "$T/$name.npy" "${other[@]}"
done < "$D/cases.txt"

# --from names the expected format; the metadata says what was imported.
check_fails from_mismatch "expected a keras file, but its content is torchvision" \
  "$MSKX_BIN" import --from keras "$D/d121_bare.pth" --arch densenet121 --out "$T/x.safetensors"
check import_from_torchvision "$MSKX_BIN" import --from torchvision "$D/d121_imagenet.pth" --arch densenet121 \
  --out "$T/imnet.safetensors" --size 224
if grep -q "re-initialised (the source's classifier has 1000 outputs)" "$T/out"; then pass imagenet_head_reinit
else fail imagenet_head_reinit "$(cat "$T/out")"; fi
/usr/bin/python3 - "$T" <<'EOF'
import json, struct, sys
t = sys.argv[1]
def meta(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n])["__metadata__"]
m = meta(t + "/imnet.safetensors")
ok = m["format"] == "mskx-model-1" and m["size"] == "224" and m["bn_eps"] == "1e-05" and "torchvision" in m["source"]
print(("PASS" if ok else "FAIL") + " imported_metadata" + ("" if ok else ": %r" % m))
k = meta(t + "/k121_weights_keras_eps.safetensors")
ok = k["bn_eps"] == "1.001e-05" and "mode 'torch'" in k["preprocessing"]
print(("PASS" if ok else "FAIL") + " keras_metadata_epsilon" + ("" if ok else ": %r" % k))
EOF
check bn_eps_override "$MSKX_BIN" import "$D/k121_weights.h5" --arch densenet121 --out "$T/k_eps.safetensors" --bn-eps 1e-5
if "$MSKX_BIN" forward --arch densenet121 --weights "$T/k_eps.safetensors" --input "$D/x.npy" --output "$T/k_eps.npy" \
    --threads 2 2>"$T/err"; then
  cmp_logits logits_bn_eps_override "$D/k121_weights_eps1e-5_ref.npy" "$T/k_eps.npy"
else fail logits_bn_eps_override "$(cat "$T/err")"; fi
# The imported model is a model file predict reads.
"$MSKX_BIN" synth --out "$T/syn" --studies 20 --seed 2 --min-size 40 --max-size 48 --threads 2 >/dev/null 2>&1
img=$(find "$T/syn" -name '*.png' | head -1)
check predict_imported_model "$MSKX_BIN" predict --model "$T/d121_bare.safetensors" "$img" --threads 2

# Hostile and broken files: refused with the reason, never run.
I() { "$MSKX_BIN" import "$@" --arch densenet121 --out "$T/h.safetensors"; }
check_fails pickle_os_system "Python global 'posix.system'.*refused" I "$D/evil_system.pth"
if [ -e "$D/pwned" ]; then fail pickle_os_system_not_run "the pickle's command ran"; else pass pickle_os_system_not_run; fi
check_fails zip_bad_crc "bad_crc.pth.*CRC" I "$D/bad_crc.pth"
check_fails zip_truncated "truncated.pth: not a readable zip" I "$D/truncated.pth"
check_fails storage_short "storage '0' holds 100 bytes, but tensor 'w' needs 256" I "$D/short_storage.pth"
check_fails tensor_beyond_storage "tensor 'w' reaches element 7 of storage '0', which has 4" I "$D/beyond_storage.pth"
check_fails absurd_size "tensor 'w' is larger than" I "$D/absurd_size.pth"
check_fails memo_index "memo index 4294967295 above the limit" I "$D/bad_memo.pth"
check_fails memo_unset "memo slot read before it was written" I "$D/unset_memo.pth"
check_fails nesting_depth "nested deeper than 256" I "$D/deep.pth"
check_fails zip_not_torch "not a PyTorch checkpoint \(no <folder>/data.pkl" I "$D/not_torch.zip"
check_fails keras_resnet_refused "Keras's ResNet50 is ResNet v1.*refused" I "$D/keras_resnet.h5"
check_fails keras_to_resnet_refused "DenseNets only" "$MSKX_BIN" import "$D/k121_weights.h5" --arch resnet50 \
  --out "$T/h.safetensors"
check_fails keras_huge_chunk "stored in chunks of more than 64 MiB" I "$D/keras_huge_chunk.h5"
check_fails keras_long_double "has a 16-byte float type" I "$D/keras_long_double.h5"
check_fails keras_huge_float_type "2693136640-byte float type" I "$MSKX_ROOT/tests/fuzz/regressions/keras_h5/huge_float_type.h5"
check_fails keras_two_sigmoids "two outputs with activation 'sigmoid'" I "$D/k121_sigmoid2.h5"
check_fails wrong_arch "missing tensor 'features.denseblock3.denselayer25" "$MSKX_BIN" import "$D/d121_bare.pth" \
  --arch densenet169 --out "$T/h.safetensors"
printf 'not a model' > "$T/junk.bin"
check_fails unknown_format "not a PyTorch checkpoint \(zip\), a Keras HDF5 file or a safetensors file" I "$T/junk.bin"
check_fails missing_input "nope.pth: cannot open" I "$T/nope.pth"

# train --pretrained takes .pth and .h5 files by content (any file name), with the head re-initialised;
# a run from Keras weights keeps Keras's epsilon in its checkpoints.
A="densenet:growth=4,blocks=1-1,init=8,bn_size=2"
cp "$D/tiny_keras.h5" "$T/tiny_keras.weights"
for src in tiny.pth tiny_keras.weights; do
  f="$D/$src"; [ -e "$f" ] || f="$T/$src"
  check "train_pretrained_$src" "$MSKX_BIN" train --data "$T/syn/MURA-v1.1" --out "$T/run_$src" --arch "$A" --size 32 \
    --batch 4 --epochs 1 --threads 2 --class-weights balanced --pretrained "$f"
done
if grep -aq '"bn_eps":"1.001e-05"' "$T/run_tiny_keras.weights/last.safetensors" &&
   grep -aq '"bn_eps":"1e-05"' "$T/run_tiny.pth/last.safetensors"; then pass train_pretrained_keeps_epsilon
else fail train_pretrained_keeps_epsilon "checkpoint metadata lacks the source's bn_eps"; fi
check_fails train_pretrained_hostile "posix.system" "$MSKX_BIN" train --data "$T/syn/MURA-v1.1" --out "$T/run_evil" \
  --arch "$A" --size 32 --class-weights balanced --pretrained "$D/evil_system.pth"
