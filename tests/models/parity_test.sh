# Parity of `mskx forward` with PyTorch/torchvision (float64 reference):
# eval and train logits, loss and every parameter gradient, plus bf16 logits
# and bf16 training gradients (against PyTorch's bf16 autocast's accuracy).
# Full-size models at 64x64 (batch 2) keep the suite fast; the reference is
# generated at test time by tests/tools/torch_parity.py. Inception-v3 runs at
# 299x299, the smallest size at which its auxiliary head (part of the training
# loss) exists, with transform_input on and dropout off (torch_parity.py).
source "$MSKX_ROOT/tests/lib.sh"
tools="$MSKX_ROOT/tests/tools"
parity() {  # label arch size batch [extra forward options...]
  local label=$1 arch=$2 size=$3 batch=$4 d="$T/$1"
  shift 4
  mkdir -p "$d"
  if ! /usr/bin/python3 "$tools/torch_parity.py" "$arch" "$d/ref" --size "$size" --batch "$batch" >"$d/py.log" 2>&1; then
    fail "${label}_reference" "$(tail -3 "$d/py.log")"; return; fi
  local w="$d/ref/weights.safetensors" x="$d/ref/x.npy"
  "$MSKX_BIN" forward --arch "$arch" --weights "$w" --input "$x" --output "$d/logits_eval.npy" &&
  "$MSKX_BIN" forward --arch "$arch" --weights "$w" --input "$x" --mode train --output "$d/logits_train.npy" "$@" \
      --target "$d/ref/y.npy" --grads "$d/grads.safetensors" > "$d/loss.txt" 2>"$d/err.txt" || {
    fail "${label}_forward" "$(cat "$d/err.txt")"; return; }
  /usr/bin/python3 "$tools/compare_parity.py" "$d/ref" "$d" "$label"
  if "$MSKX_BIN" forward --arch "$arch" --weights "$w" --input "$x" --mode train --precision bf16 "$@" \
      --output "$d/logits_train_bf16.npy" --target "$d/ref/y.npy" --grads "$d/grads_bf16.safetensors" \
      >/dev/null 2>"$d/err.txt"; then
    /usr/bin/python3 "$tools/compare_parity.py" "$d/ref" "$d" "$label" --bf16-train
  else fail "${label}_bf16_train_forward" "$(cat "$d/err.txt")"; fi
  if "$MSKX_BIN" forward --arch "$arch" --weights "$w" --input "$x" --precision bf16 \
      --output "$d/logits_eval_bf16.npy" 2>"$d/err.txt"; then
    /usr/bin/python3 "$tools/compare_parity.py" "$d/ref" "$d" "$label" --bf16
  else fail "${label}_bf16_forward" "$(cat "$d/err.txt")"; fi
}
parity small_densenet "densenet:growth=12,blocks=2-3-2,init=16,bn_size=4" 64 3
parity densenet121 densenet121 64 2
parity densenet169 densenet169 64 2
parity resnet50 resnet50 64 2
parity inception_v3 inception_v3 299 2 --dropout 0
