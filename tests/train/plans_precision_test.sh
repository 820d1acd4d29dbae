# Resident training/validation plans (no re-planning between epochs, same
# weights as re-planning) and --precision auto (a candidate is chosen and
# reported, and results equal an explicit run in that precision).
source "$MSKX_ROOT/tests/lib.sh"
ARCH="densenet:growth=4,blocks=1-1,init=8,bn_size=2"
COMMON=(--arch "$ARCH" --size 32 --batch 8 --threads 2 --loader-threads 1 --seed 5 --lr 1e-3)
"$MSKX_BIN" synth --out "$T/syn" --studies 40 --seed 3 --min-size 40 --max-size 56 --threads 2 >/dev/null 2>&1 ||
  { fail synth_for_plans "mskx synth failed"; exit 0; }
DATA="$T/syn/MURA-v1.1"
py() { /usr/bin/python3 - "$@"; }
same_weights() {
  py "$1" "$2" <<'PY'
import sys
sys.path.insert(0, __import__("os").environ["MSKX_ROOT"] + "/tests/tools")
from sttools import load_safetensors
import numpy as np
a, _ = load_safetensors(sys.argv[1]); b, _ = load_safetensors(sys.argv[2])
assert a.keys() == b.keys()
bad = [k for k in a if not np.array_equal(a[k], b[k])]
assert not bad, "differs: %s" % bad[:5]
PY
}

# 1. Resident plans: after the first epoch nothing is built; --keep-plans off
#    re-plans twice an epoch (the old behaviour); the weights are the same.
check keep_runs "$MSKX_BIN" train --data "$DATA" --out "$T/keep" "${COMMON[@]}" --epochs 3
check rebuild_runs "$MSKX_BIN" train --data "$DATA" --out "$T/rebuild" "${COMMON[@]}" --epochs 3 --keep-plans off
if py "$T/keep/log.jsonl" "$T/rebuild/log.jsonl" <<'PY'
import json, sys
keep = [json.loads(l)["plan"] for l in open(sys.argv[1])]
reb = [json.loads(l)["plan"] for l in open(sys.argv[2])]
assert keep[0]["built"] == 2 and keep[0]["primitives"] > 0, keep
for p in keep[1:]:
    assert p["built"] == 0 and p["reused"] == 2 and p["primitives"] == 0, keep
for p in reb:
    assert p["built"] == 2 and p["reused"] == 0 and p["primitives"] == keep[0]["primitives"], reb
PY
then pass resident_plans_build_nothing_after_epoch_1; else fail resident_plans_build_nothing_after_epoch_1 "plan counts"; fi
same_weights "$T/keep/last.safetensors" "$T/rebuild/last.safetensors" &&
  pass resident_plans_same_weights || fail resident_plans_same_weights "weights differ from a re-planning run"
# --keep-plans and --threads are local (not in the fingerprint) but saved, and a resume may change them.
check keep_on_runs "$MSKX_BIN" train --data "$DATA" --out "$T/keep_on" "${COMMON[@]}" --epochs 2 --keep-plans on
check resume_keep_off_runs "$MSKX_BIN" train --resume "$T/keep_on" --epochs 3 --keep-plans off --threads 1
if py "$T/keep_on/log.jsonl" "$T/keep_on/config.json" <<'PY'
import json, sys
p = [json.loads(l)["plan"] for l in open(sys.argv[1])]
assert [x["built"] for x in p] == [2, 0, 2] and p[1]["reused"] == 2 and not p[2]["resident"], p
cfg = json.load(open(sys.argv[2]))
assert cfg["keep_plans"] == 2, "config.json keep_plans"
assert cfg["threads"] == 1, "config.json threads %r after --resume --threads 1" % cfg["threads"]
PY
then pass keep_plans_on_then_off_on_resume; else fail keep_plans_on_then_off_on_resume "plan counts or config.json"; fi
check_fails keep_plans_bad_value "--keep-plans" "$MSKX_BIN" train --data "$DATA" --out "$T/kp_bad" --keep-plans 0

# 2. --precision auto in training: the choice is reported, recorded per
#    epoch, and the run equals an explicit run in that precision, also
#    when resumed (the checkpoint keeps the choice).
check auto_train_runs "$MSKX_BIN" train --data "$DATA" --out "$T/auto" "${COMMON[@]}" --epochs 2 --precision auto
grep -Eq "precision auto: one training step fp32 [0-9]+ ms.*: training in (fp32|bf16)" "$T/err" &&
  pass auto_train_reports_choice || fail auto_train_reports_choice "$(head -c 300 "$T/err")"
chosen=$(py "$T/auto/log.jsonl" <<'PY'
import json, sys
p = {json.loads(l)["precision"] for l in open(sys.argv[1])}
assert len(p) == 1 and p <= {"fp32", "bf16"}, p
print(p.pop())
PY
)
[ -n "$chosen" ] && pass auto_train_logs_precision || fail auto_train_logs_precision "log.jsonl precision"
echo "# auto chose $chosen"
check auto_resume_runs "$MSKX_BIN" train --resume "$T/auto" --epochs 3
grep -q "training in ${chosen:-x}, as before the resume" "$T/err" &&
  pass auto_resume_keeps_choice || fail auto_resume_keeps_choice "$(head -c 300 "$T/err")"
check explicit_train_runs "$MSKX_BIN" train --data "$DATA" --out "$T/expl" "${COMMON[@]}" --epochs 3 --precision "${chosen:-fp32}"
same_weights "$T/auto/last.safetensors" "$T/expl/last.safetensors" &&
  pass auto_train_equals_explicit || fail auto_train_equals_explicit "weights differ from --precision $chosen"

# 3. mskx bench --precision auto: times the candidates, says which it kept.
check auto_bench_runs "$MSKX_BIN" bench --arch "$ARCH" --size 32 --batch 4 --mode train --precision auto --iters 2 \
  --warmup 1 --threads 2
if py "$T/out" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
assert o["precision_requested"] == "auto" and o["precision"] in ("fp32", "bf16"), o
ms = o["precision_ms"]
assert "fp32" in ms and o["precision"] in ms and ms[o["precision"]] == min(ms.values()), o
assert ("bf16" in ms) == o["bf16_native"], o
PY
then pass auto_bench_reports_choice; else fail auto_bench_reports_choice "$(head -c 300 "$T/out")"; fi

# 4. mskx predict --precision auto: probabilities equal an explicit run's.
S=$(ls -d "$DATA"/valid/*/*/* | head -1)
"$MSKX_BIN" predict --model "$T/expl/best.safetensors" --json --threads 2 --precision auto "$S" >"$T/pa.json" 2>"$T/pa.err"
pchosen=$(sed -n 's/.*precision auto: \(fp32\|bf16\).*/\1/p' "$T/pa.err")
"$MSKX_BIN" predict --model "$T/expl/best.safetensors" --json --threads 2 --precision "${pchosen:-fp32}" "$S" >"$T/pe.json" 2>/dev/null
[ -n "$pchosen" ] && cmp -s "$T/pa.json" "$T/pe.json" && pass auto_predict_equals_explicit ||
  fail auto_predict_equals_explicit "chose '$pchosen': $(head -c 200 "$T/pa.err")"

check_fails precision_bad_value "expected fp32, bf16, auto or int8" "$MSKX_BIN" bench --precision fp16

# 5. A bf16 bench also times one fp32 step (for the "bf16 is slower" warning),
#    unless --no-fp32-check; the warning, when printed, names both times.
if grep -q avx512_bf16 /proc/cpuinfo; then
  check bf16_bench_runs "$MSKX_BIN" bench --arch "$ARCH" --size 32 --batch 4 --precision bf16 --iters 2 --warmup 1 --threads 2
  if py "$T/out" "$T/err" <<'PY'
import json, re, sys
o = json.load(open(sys.argv[1]))
ms = o["precision_ms"]
assert o["precision"] == "bf16" and ms["fp32"] > 0 and ms["bf16"] > 0, o
warned = "warning: bf16 is slower than fp32" in open(sys.argv[2]).read()
assert warned == (ms["bf16"] > ms["fp32"]), (ms, warned)
PY
  then pass bf16_bench_times_fp32; else fail bf16_bench_times_fp32 "$(head -c 300 "$T/out") $(head -c 200 "$T/err")"; fi
  check bf16_bench_no_check "$MSKX_BIN" bench --arch "$ARCH" --size 32 --batch 4 --precision bf16 --iters 2 --warmup 1 \
    --threads 2 --no-fp32-check
  grep -q precision_ms "$T/out" && fail bf16_bench_skips_fp32 "$(head -c 300 "$T/out")" || pass bf16_bench_skips_fp32
fi
