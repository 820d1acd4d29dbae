# Smoke test of `mskx bench` and bench/compare at tiny size: the JSON is
# well formed with positive figures, training really updates the weights,
# bad options fail clearly, and the side-by-side table is produced end to end.
# No timing assertions: this machine is shared.
source "$MSKX_ROOT/tests/lib.sh"

ARCH="densenet:growth=8,blocks=1-1,init=8"
TINY=(--arch "$ARCH" --size 32 --batch 2 --iters 2 --warmup 1)

# check_json NAME MODE PRECISION FILE: the object has every key, the right
# echoes of the options and positive figures; train reports a finite loss.
check_json() {
  local name=$1 mode=$2 prec=$3 file=$4
  if /usr/bin/python3 - "$mode" "$prec" "$ARCH" "$file" >"$T/py" 2>&1 <<'EOF'
import json, math, sys
mode, prec, arch, path = sys.argv[1:]
lines = open(path).read().strip().splitlines()
assert len(lines) == 1, "expected one line of JSON, got %d lines" % len(lines)
o = json.loads(lines[0])
keys = ["arch", "size", "batch", "precision", "mode", "threads", "iters", "images_per_s",
        "ms_per_batch_median", "ms_per_batch_min", "peak_rss_mb", "engine"]
missing = [k for k in keys if k not in o]
assert not missing, "missing keys %s" % missing
assert (o["arch"], o["size"], o["batch"], o["precision"], o["mode"], o["iters"]) == (arch, 32, 2, prec, mode, 2), o
assert o["engine"] == "onednn", o
for k in ("threads", "images_per_s", "ms_per_batch_median", "ms_per_batch_min", "peak_rss_mb"):
    assert isinstance(o[k], (int, float)) and o[k] > 0, "%s = %r" % (k, o[k])
assert o["ms_per_batch_min"] <= o["ms_per_batch_median"], o
# images/s is the batch over the median time
assert abs(o["images_per_s"] - 2 / (o["ms_per_batch_median"] / 1e3)) <= 0.02 * o["images_per_s"] + 1, o
if mode == "train":
    assert math.isfinite(o["loss_first"]) and o["loss_first"] > 0, o
    # three Adam steps on one fixed batch must change the loss
    assert o["loss_last"] != o["loss_first"], o
EOF
  then pass "$name"; else fail "$name" "$(tail -c 400 "$T/py")"; fi
}

precs=(fp32)
grep -q avx512_bf16 /proc/cpuinfo && precs+=(bf16)
for prec in "${precs[@]}"; do
  for mode in infer train; do
    if "$MSKX_BIN" bench "${TINY[@]}" --mode "$mode" --precision "$prec" --json >"$T/$mode-$prec.json" 2>"$T/err"; then
      check_json "bench_${mode}_${prec}" "$mode" "$prec" "$T/$mode-$prec.json"
    else
      fail "bench_${mode}_${prec}" "$(head -c 300 "$T/err")"
    fi
  done
done

check help "$MSKX_BIN" bench --help
grep -q -- "--mode infer|train" "$T/out" && pass help_text || fail help_text "usage lacks --mode"
check_fails bad_mode "--mode: expected infer or train, got 'fit'" "$MSKX_BIN" bench "${TINY[@]}" --mode fit
check_fails bad_precision "--precision: expected fp32, bf16, auto or int8" "$MSKX_BIN" bench "${TINY[@]}" --precision fp16
check_fails zero_batch "--batch: 0 is out of range" "$MSKX_BIN" bench "${TINY[@]}" --batch 0
check_fails bad_iters "--iters: 'x' is not an integer" "$MSKX_BIN" bench "${TINY[@]}" --iters x
check_fails neg_warmup "--warmup: -1 is out of range" "$MSKX_BIN" bench "${TINY[@]}" --warmup -1
check_fails bad_arch "unknown arch 'densenet7'" "$MSKX_BIN" bench --arch densenet7 --size 32 --iters 1
check_fails small_size "needs inputs of at least" "$MSKX_BIN" bench --arch densenet121 --size 16 --iters 1
check_fails huge_batch "too large" "$MSKX_BIN" bench --arch densenet121 --size 8192 --batch 4096
check_fails unknown_opt "see 'mskx bench --help'" "$MSKX_BIN" bench --frobnicate
check_fails stray_arg "unexpected argument 'extra'" "$MSKX_BIN" bench "${TINY[@]}" extra

# bench/compare end to end: both sides run, the table has a row per config
# with numbers in every column, and the header names the command.
if "$MSKX_ROOT/bench/compare" --quick --rounds 2 --mskx "$MSKX_BIN" --json-out "$T/raw.json" >"$T/table.md" 2>"$T/cmp.err"; then
  pass compare_runs
else
  fail compare_runs "$(tail -c 400 "$T/cmp.err")"
fi
rows=$(grep -c "^| $ARCH 32px b2 \(infer\|train\) fp32 | [0-9.]* | [0-9.]* | [0-9.]*x | [0-9]*% | [0-9]*% | [0-9]* | [0-9]* | [0-9.]*x |$" "$T/table.md")
[ "$rows" = 2 ] && pass compare_table || fail compare_table "expected 2 complete rows, got $rows: $(head -c 600 "$T/table.md")"
# the end-to-end training row (whole runs, no ceiling columns) and the ceilings' header line
grep -q "^| $ARCH 32px b4 e2e fp32 | [0-9.]* | [0-9.]* | [0-9.]*x | - | - | [0-9]* | [0-9]* | [0-9.]*x |$" "$T/table.md" &&
  pass compare_e2e_row || fail compare_e2e_row "$(grep e2e "$T/table.md" | head -c 600)"
grep -q "^- ceilings (bench/peak.py, same run): convolution peak [0-9]* GFLOP/s fp32" "$T/table.md" &&
  pass compare_ceilings || fail compare_ceilings "$(head -c 900 "$T/table.md")"
grep -q "^- command: \`bench/compare --quick" "$T/table.md" && grep -q "^- machine: " "$T/table.md" &&
  grep -q "PyTorch 1\." "$T/table.md" && pass compare_header || fail compare_header "$(head -c 600 "$T/table.md")"
# alternation and fresh processes: 2 rounds x 2 configs x 2 sides, round by round
order=$(/usr/bin/python3 -c 'import json,sys; print(" ".join("%d%s" % (r["round"], r["side"][0]) for r in json.load(open(sys.argv[1]))))' "$T/raw.json" 2>&1)
[ "$order" = "1m 1t 1m 1t 1m 1t 2m 2t 2m 2t 2m 2t" ] && pass compare_alternates || fail compare_alternates "order: $order"
check_fails compare_bad_config "expected ARCH/SIZE/BATCH/MODE/PRECISION" "$MSKX_ROOT/bench/compare" --quick --mskx "$MSKX_BIN" densenet121/320
check_fails compare_bad_mode "mode must be infer, train or e2e" "$MSKX_ROOT/bench/compare" --quick --mskx "$MSKX_BIN" "$ARCH/32/2/fit/fp32"

# the profile mode parses oneDNN's verbose output into non-empty tables
if "$MSKX_ROOT/bench/compare" --quick --profile --mskx "$MSKX_BIN" "$ARCH/32/2/train/fp32" >"$T/prof.md" 2>"$T/prof.err"; then
  grep -q "^| convolution forward_training | [0-9.]* |" "$T/prof.md" &&
    grep -q "^| convolution backward_weights | [0-9.]* |" "$T/prof.md" && pass profile ||
    fail profile "$(head -c 600 "$T/prof.md")"
else
  fail profile "$(tail -c 400 "$T/prof.err")"
fi

# bench/loader end to end at tiny size: both sources train and the table
# reports their mean throughputs and ratio; the pinned field is in the JSON.
if "$MSKX_ROOT/bench/loader" --mskx "$MSKX_BIN" --arch "$ARCH" --size 32 --batch 2 --batches 2 --rounds 1 \
    --studies 14 --precision fp32 >"$T/loader.md" 2>"$T/loader.err"; then
  grep -q "^| PNG files (decode + resize + augment) | [0-9.]* | " "$T/loader.md" &&
    grep -q "^| decoded cache (augment only) | [0-9.]* | " "$T/loader.md" &&
    grep -q "^PNG / cache throughput: [0-9.]* (" "$T/loader.md" && pass loader_check ||
    fail loader_check "$(head -c 600 "$T/loader.md")"
else
  fail loader_check "$(tail -c 400 "$T/loader.err")"
fi
check_fails loader_bad_option "unknown option '--frob'" "$MSKX_ROOT/bench/loader" --frob
"$MSKX_BIN" bench "${TINY[@]}" >"$T/pin.json" 2>&1 && grep -q '"pinned":\(true\|false\)' "$T/pin.json" &&
  pass bench_reports_pinning || fail bench_reports_pinning "$(head -c 300 "$T/pin.json")"
MSKX_PIN=0 "$MSKX_BIN" bench "${TINY[@]}" >"$T/pin0.json" 2>&1 && grep -q '"pinned":false' "$T/pin0.json" &&
  pass bench_pin_off || fail bench_pin_off "$(head -c 300 "$T/pin0.json")"
