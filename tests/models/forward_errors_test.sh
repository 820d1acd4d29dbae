# Bad input to `mskx forward` and to weight loading: one clear line naming the
# file and the problem, a non-zero exit, never a crash.
source "$MSKX_ROOT/tests/lib.sh"
A="densenet:growth=4,blocks=1-1,init=8,bn_size=2"
D="$T/w"
/usr/bin/python3 "$MSKX_ROOT/tests/tools/make_bad_weights.py" "$D" "$A" > "$T/py.log" 2>&1 ||
  { fail make_fixtures "$(tail -3 "$T/py.log")"; exit 0; }
F() { "$MSKX_BIN" forward --arch "$A" "$@"; }
check good_weights_run F --weights "$D/good.safetensors" --input "$D/x.npy" --output "$T/l.npy"
check_fails missing_weights_file "nope.safetensors.*cannot open" F --weights "$T/nope.safetensors" --input "$D/x.npy"
check_fails missing_input_file "nope.npy.*cannot open" F --weights "$D/good.safetensors" --input "$T/nope.npy"
check_fails truncated_safetensors "truncated.safetensors" F --weights "$D/truncated.safetensors" --input "$D/x.npy"
check_fails header_beyond_file "liar.safetensors.*header" F --weights "$D/liar.safetensors" --input "$D/x.npy"
check_fails missing_tensor "missing tensor 'features.norm0.running_var'" F --weights "$D/missing.safetensors" --input "$D/x.npy"
check_fails unexpected_tensor "unexpected tensor 'features.bogus.weight'" F --weights "$D/extra.safetensors" --input "$D/x.npy"
check_fails misshaped_tensor "'features.conv0.weight' has shape \[1, 2, 3, 3\]" F --weights "$D/misshaped.safetensors" --input "$D/x.npy"
check_fails imagenet_head_needs_option "classifier.weight.*re-initialises the head" F --weights "$D/imagenet.safetensors" --input "$D/x.npy"
check_fails wrong_channels "x_1ch.npy: input must have shape \(N, 3, H, W\)" F --weights "$D/good.safetensors" --input "$D/x_1ch.npy"
check_fails wrong_rank "x_3d.npy: input must have shape" F --weights "$D/good.safetensors" --input "$D/x_3d.npy"
check_fails wrong_dtype "x_f64.npy.*<f8" F --weights "$D/good.safetensors" --input "$D/x_f64.npy"
check_fails truncated_npy "x_trunc.npy.*truncated" F --weights "$D/good.safetensors" --input "$D/x_trunc.npy"
check_fails input_too_small "needs inputs of at least" F --weights "$D/good.safetensors" --input "$D/x_small.npy"
check_fails unknown_arch "unknown arch 'vgg16'" "$MSKX_BIN" forward --arch vgg16 --weights "$D/good.safetensors" --input "$D/x.npy"
check_fails unknown_arch_key "unknown key 'depth'" "$MSKX_BIN" forward --arch "densenet:growth=4,blocks=1-1,depth=3" --weights "$D/good.safetensors" --input "$D/x.npy"
check_fails absurd_arch_value "growth must be an integer" "$MSKX_BIN" forward --arch "densenet:growth=-4,blocks=1-1" --weights "$D/good.safetensors" --input "$D/x.npy"
check_fails grads_need_train "--grads needs --mode train" F --weights "$D/good.safetensors" --input "$D/x.npy" --target "$D/x.npy" --grads "$T/g.safetensors"
check_fails bad_mode "--mode: expected eval or train" F --weights "$D/good.safetensors" --input "$D/x.npy" --mode test
# ImageNet-style weights (1000-way head, I64 counters) load for transfer learning.
"$MSKX_BIN" synth --out "$T/syn" --studies 20 --seed 2 --min-size 40 --max-size 48 --threads 2 >/dev/null 2>&1
check pretrained_imagenet_head_reinit "$MSKX_BIN" train --data "$T/syn/MURA-v1.1" --out "$T/run" --arch "$A" --size 32 \
  --batch 4 --epochs 1 --threads 2 --class-weights balanced --pretrained "$D/imagenet.safetensors" --freeze-backbone-epochs 1
# An int8 model file (mskx quantize) is refused by name, not as "unexpected tensor ...weight_scale".
"$MSKX_BIN" quantize --model "$T/run/best.safetensors" --data "$T/syn/MURA-v1.1" --out "$T/m8.safetensors" --calib 8 \
  --threads 2 >/dev/null 2>&1 || fail quantize_for_forward "mskx quantize failed"
check_fails int8_model_refused "m8.safetensors is an int8 \(quantised\) model: .*predict, eval or serve" \
  F --weights "$T/m8.safetensors" --input "$D/x.npy"
check_fails pretrained_missing "no such file" "$MSKX_BIN" train --data "$T/syn/MURA-v1.1" --out "$T/run2" --arch "$A" \
  --size 32 --class-weights balanced --pretrained "$T/none.safetensors"
