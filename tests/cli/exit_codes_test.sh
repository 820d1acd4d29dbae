# Exit statuses are the same for every command: 2 for a usage error (unknown
# option, bad or missing option value, stray argument), 1 when the work
# itself fails (here: files that do not exist), 0 on success.
source "$MSKX_ROOT/tests/lib.sh"
NOPE="$T/nope"
: > "$T/file"

# expect NAME STATUS CMD...: passes when CMD exits with STATUS and says something on stderr.
expect() {
  local n=$1 want=$2; shift 2
  "$@" >"$T/out" 2>"$T/err" </dev/null; local rc=$?
  if [ "$rc" = "$want" ] && [ -s "$T/err" ]; then pass "$n"; else fail "$n" "exit $rc (want $want): $(head -c 300 "$T/err")"; fi
}

expect main_no_command 2 "$MSKX_BIN"
expect main_unknown_command 2 "$MSKX_BIN" frobnicate

for cmd in synth stats train lr-find eval score threshold ensemble predict serve bench forward import bundle dicom export quantize; do
  expect "${cmd}_unknown_option" 2 "$MSKX_BIN" $cmd --no-such-option
done

# A bad option value, and a missing required option, for each command.
expect synth_bad_value 2 "$MSKX_BIN" synth --out "$T/s" --studies many
expect synth_missing 2 "$MSKX_BIN" synth
expect synth_stray_argument 2 "$MSKX_BIN" synth --out "$T/s" extra
expect stats_bad_value 2 "$MSKX_BIN" stats --data "$NOPE" --threads 0
expect stats_missing 2 "$MSKX_BIN" stats
expect train_bad_value 2 "$MSKX_BIN" train --data "$NOPE" --out "$T/t" --batch 0
expect train_bad_double 2 "$MSKX_BIN" train --data "$NOPE" --out "$T/t" --lr -1
expect train_bad_choice 2 "$MSKX_BIN" train --data "$NOPE" --out "$T/t" --optimizer adagrad
expect train_bad_arch 2 "$MSKX_BIN" train --data "$NOPE" --out "$T/t" --arch vgg16
expect train_bad_class_weights 2 "$MSKX_BIN" train --data "$NOPE" --out "$T/t" --class-weights 0:1
expect train_missing 2 "$MSKX_BIN" train --out "$T/t"
expect train_stray_argument 2 "$MSKX_BIN" train --data "$NOPE" --out "$T/t" extra
expect train_resume_with_options 2 "$MSKX_BIN" train --resume "$NOPE" --lr 0.1
expect train_bad_u64 2 "$MSKX_BIN" train --data "$NOPE" --out "$T/t" --seed -1
expect train_bad_int 2 "$MSKX_BIN" train --data "$NOPE" --out "$T/t" --patience 1.5
expect lr_find_bad_value 2 "$MSKX_BIN" lr-find --data "$NOPE" --steps 2
expect lr_find_bad_range 2 "$MSKX_BIN" lr-find --data "$NOPE" --start 1 --end 0.1
expect lr_find_train_only_option 2 "$MSKX_BIN" lr-find --data "$NOPE" --epochs 3
expect lr_find_stray_argument 2 "$MSKX_BIN" lr-find --data "$NOPE" extra
expect eval_bad_value 2 "$MSKX_BIN" eval --model "$NOPE" --data "$NOPE" --threads 0
expect eval_missing 2 "$MSKX_BIN" eval --data "$NOPE"
expect score_bad_value 2 "$MSKX_BIN" score --pred "$NOPE" --truth "$NOPE" --threshold 2
expect score_missing 2 "$MSKX_BIN" score --pred "$NOPE"
expect threshold_bad_value 2 "$MSKX_BIN" threshold --model "$NOPE" --data "$NOPE" --policy kappa --threads 0
expect threshold_missing 2 "$MSKX_BIN" threshold --model "$NOPE"
expect ensemble_bad_value 2 "$MSKX_BIN" ensemble --out "$T/e.json" --method median "$NOPE" "$NOPE"
expect ensemble_missing 2 "$MSKX_BIN" ensemble "$NOPE" "$NOPE"
expect predict_bad_value 2 "$MSKX_BIN" predict --model "$NOPE" --max-batch 0 "$NOPE"
expect predict_missing 2 "$MSKX_BIN" predict "$NOPE"
expect serve_bad_value 2 "$MSKX_BIN" serve --model "$NOPE" --port http
expect serve_missing 2 "$MSKX_BIN" serve
expect bench_bad_value 2 "$MSKX_BIN" bench --size 0
expect bench_stray_argument 2 "$MSKX_BIN" bench extra
expect forward_bad_value 2 "$MSKX_BIN" forward --arch densenet121 --weights "$NOPE" --input "$NOPE" --threads 0
expect forward_missing 2 "$MSKX_BIN" forward --arch densenet121
expect import_bad_value 2 "$MSKX_BIN" import "$NOPE" --arch densenet121 --out "$T/m.safetensors" --from onnx
expect import_missing 2 "$MSKX_BIN" import "$NOPE" --arch densenet121
expect bundle_bad_value 2 "$MSKX_BIN" bundle --out "$T/b.json" --select f1 "$NOPE"
expect bundle_missing 2 "$MSKX_BIN" bundle --select kappa "$NOPE"
expect dicom_bad_value 2 "$MSKX_BIN" dicom render "$NOPE" --out "$T/d" --dicom-frames 2
expect dicom_missing 2 "$MSKX_BIN" dicom render "$NOPE"
expect export_bad_value 2 "$MSKX_BIN" export --model "$NOPE" --onnx "$T/x.onnx" --opset 12
expect export_missing 2 "$MSKX_BIN" export --model "$NOPE"
expect quantize_bad_value 2 "$MSKX_BIN" quantize --model "$NOPE" --data "$NOPE" --out "$T/q" --statistic p0
expect quantize_missing 2 "$MSKX_BIN" quantize --model "$NOPE"
expect import_stray_argument 2 "$MSKX_BIN" import "$NOPE" extra --arch densenet121 --out "$T/m.safetensors"

# The work fails: status 1.
expect synth_fails 1 "$MSKX_BIN" synth --out "$T/file" --studies 2
expect stats_fails 1 "$MSKX_BIN" stats --data "$NOPE"
expect train_fails 1 "$MSKX_BIN" train --data "$NOPE" --out "$T/t"
expect train_resume_fails 1 "$MSKX_BIN" train --resume "$NOPE"
expect eval_fails 1 "$MSKX_BIN" eval --model "$NOPE" --data "$NOPE" --out "$T/ev"
expect score_fails 1 "$MSKX_BIN" score --pred "$NOPE" --truth "$NOPE"
expect threshold_fails 1 "$MSKX_BIN" threshold --model "$NOPE" --data "$NOPE" --policy kappa
expect ensemble_fails 1 "$MSKX_BIN" ensemble --out "$T/e.json" --method mean "$NOPE" "$NOPE"
expect predict_fails 1 "$MSKX_BIN" predict --model "$NOPE" "$NOPE"
expect serve_fails 1 "$MSKX_BIN" serve --model "$NOPE"
expect forward_fails 1 "$MSKX_BIN" forward --arch densenet121 --weights "$NOPE" --input "$NOPE"
expect bundle_fails 1 "$MSKX_BIN" bundle --out "$T/b.json" --select kappa "$NOPE"
expect dicom_fails 1 "$MSKX_BIN" dicom info "$NOPE"
expect export_fails 1 "$MSKX_BIN" export --model "$NOPE" --onnx "$T/x.onnx"
expect quantize_fails 1 "$MSKX_BIN" quantize --model "$NOPE" --data "$NOPE" --out "$T/q"
expect import_fails 1 "$MSKX_BIN" import "$NOPE" --arch densenet121 --out "$T/m.safetensors"
