# The learning-rate finder end to end on synthetic data: its files and plot,
# that its suggestion trains (the loss falls) while 100x that rate does far
# worse, `train --lr auto` equal bit for bit to `--lr <the chosen rate>`, and a
# failed sweep that leaves the run folder untouched.
source "$MSKX_ROOT/tests/lib.sh"
ARCH="densenet:growth=4,blocks=1-1,init=8,bn_size=2"
# 10% abnormal studies and no class weights: fitting the class prior alone
# takes the loss from about 0.55 to 0.33, a signal a tiny net learns in a few
# hundred steps (the phantoms' findings need far longer).
"$MSKX_BIN" synth --out "$T/syn" --studies 160 --seed 3 --min-size 40 --max-size 56 --abnormal-fraction 0.1 \
  --threads 2 >/dev/null 2>&1 || { fail synth_for_lr_find "mskx synth failed"; exit 0; }
DATA="$T/syn/MURA-v1.1"
COMMON=(--arch "$ARCH" --size 32 --batch 16 --threads 2 --loader-threads 2 --seed 5 --no-augment --class-weights none)
py() { /usr/bin/python3 - "$@"; }

# 1. The sweep: CSV, PNG and the suggestions.
check lr_find_runs "$MSKX_BIN" lr-find --data "$DATA" "${COMMON[@]}" --out "$T/lf"
cp "$T/out" "$T/lf.out"
if py "$T/lf" "$T/lf.out" <<'PY'
import csv, math, os, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(d, "lr_find.csv"))))
assert 10 <= len(rows) <= 100, len(rows)
lr = [float(r["lr"]) for r in rows]; loss = [float(r["loss"]) for r in rows]
sm = [float(r["smoothed_loss"]) for r in rows]
assert abs(lr[0] - 1e-7) < 1e-16 and all(b > a for a, b in zip(lr, lr[1:])), lr[:3]
# Exponential: a constant ratio between steps, fastai's 1e-7 .. 10 over 100.
r = (10 / 1e-7) ** (1 / 99)
assert all(abs(b / a - r) < 1e-6 for a, b in zip(lr, lr[1:]))
# fastai's smoothing recomputed from the raw losses.
avg = 0
for i, (l, s) in enumerate(zip(loss, sm)):
    avg = 0.98 * avg + 0.02 * l
    assert abs(avg / (1 - 0.98 ** (i + 1)) - s) < 1e-6 * max(1, abs(s)), (i, s)
out = dict(l.rsplit(None, 1) for l in open(sys.argv[2]) if l.strip())
sug = float(out["suggested lr"]); mt = float(out["minimum / 10"]); st = float(out["steepest descent"])
lo, hi = len(rows) // 10, len(rows) - len(rows) // 20
m = min(range(lo, hi), key=lambda i: sm[i])
assert abs(mt - lr[m] / 10) <= 5e-3 * mt, (mt, lr[m])  # printed to 3 digits
assert sug == mt and lr[0] <= st <= lr[-1]
png = open(os.path.join(d, "lr_find.png"), "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
print("# suggested %g (steepest %g) over %d steps" % (sug, st, len(rows)))
open(os.path.join(d, "suggested"), "w").write(repr(sug))
PY
then pass lr_find_files_and_suggestion; else fail lr_find_files_and_suggestion "csv/png/suggestion check failed"; fi

# 2. The suggestion trains; a rate 100x larger diverges or ends far worse.
SUG=$(cat "$T/lf/suggested" 2>/dev/null || echo 1e-3)
BIG=$(/usr/bin/python3 -c "print($SUG * 100)")
short=(--epochs 3 --schedule constant)
check short_run_at_suggestion "$MSKX_BIN" train --data "$DATA" --out "$T/good" "${COMMON[@]}" "${short[@]}" --lr "$SUG"
"$MSKX_BIN" train --data "$DATA" --out "$T/big" "${COMMON[@]}" "${short[@]}" --lr "$BIG" >/dev/null 2>"$T/big.err"
if py "$T/lf/lr_find.csv" "$T/good/log.jsonl" "$T/big/log.jsonl" "$T/big.err" <<'PY'
import csv, json, os, sys
rows = list(csv.DictReader(open(sys.argv[1])))
start = float(rows[0]["smoothed_loss"])
good = [json.loads(l)["train_loss"] for l in open(sys.argv[2])]
assert good[-1] < 0.8 * start, ("the loss did not fall", start, good)
diverged = "diverged" in open(sys.argv[4]).read()
big = [json.loads(l)["train_loss"] for l in open(sys.argv[3])] if os.path.exists(sys.argv[3]) else []
assert diverged or big[-1] > 2 * good[-1], ("100x the suggestion did not do worse", good, big)
print("# initial loss %.4f; at the suggestion %s; at 100x %s" % (start, ["%.4f" % g for g in good],
      "diverged" if diverged else ["%.4f" % b for b in big]))
PY
then pass suggestion_converges_100x_does_not; else fail suggestion_converges_100x_does_not "see the figures above"; fi

# 3. train --lr auto: the sweep recorded, then exactly the run --lr <chosen> makes.
check train_lr_auto "$MSKX_BIN" train --data "$DATA" --out "$T/auto" "${COMMON[@]}" --epochs 2 --lr auto
CHOSEN=$(py "$T/auto/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
print(repr(c["lr"]))
PY
)
check train_lr_chosen "$MSKX_BIN" train --data "$DATA" --out "$T/fixed" "${COMMON[@]}" --epochs 2 --lr "$CHOSEN"
if py "$T/auto" "$T/fixed" "$T/lf/suggested" <<'PY'
import json, os, sys
sys.path.insert(0, os.environ["MSKX_ROOT"] + "/tests/tools")
from sttools import load_safetensors
import numpy as np
a_dir, f_dir = sys.argv[1], sys.argv[2]
c = json.load(open(os.path.join(a_dir, "config.json")))
f = c["lr_find"]
assert c["lr_auto"] == 1 and f["chosen"] == c["lr"] == c["schedule_lr0"], (f["chosen"], c["lr"])
assert f["steps_run"] == len(f["points"]) and abs(f["chosen"] - float(open(sys.argv[3]).read())) < 5e-3 * f["chosen"]
first = json.loads(open(os.path.join(a_dir, "log.jsonl")).readline())
assert first["lr_find"]["chosen"] == c["lr"], first
for name in ("lr_find.csv", "lr_find.png"):
    assert os.path.exists(os.path.join(a_dir, name)), name
for name in ("last.safetensors", "best.safetensors"):
    a, _ = load_safetensors(os.path.join(a_dir, name)); b, _ = load_safetensors(os.path.join(f_dir, name))
    assert a.keys() == b.keys()
    bad = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not bad, "%s differs: %s" % (name, bad[:5])
print("# --lr auto chose %r; %d tensors identical to --lr %r" % (c["lr"], len(a), c["lr"]))
PY
then pass lr_auto_equals_fixed_rate; else fail lr_auto_equals_fixed_rate "auto run differs from the fixed-rate run"; fi

# 4. Resume keeps the record; --epochs rewrites config.json with it.
check lr_auto_resume "$MSKX_BIN" train --resume "$T/auto" --epochs 3
py "$T/auto/config.json" <<'PY' && pass resume_keeps_sweep || fail resume_keeps_sweep "lr_find lost from config.json"
import json, sys
c = json.load(open(sys.argv[1])); assert c["epochs"] == 3 and "points" in c["lr_find"]
PY

# 5. A failed sweep touches nothing: an existing run folder's files keep their bytes.
mkdir -p "$T/keep"; echo '{"keep": 1}' >"$T/keep/config.json"; before=$(sha256sum "$T/keep/config.json")
check_fails failed_sweep_reports "learning-rate finder|divis|batch" "$MSKX_BIN" train --data "$DATA" --out "$T/keep" \
  --force "${COMMON[@]}" --batch 4000 --epochs 1 --lr auto
[ "$(sha256sum "$T/keep/config.json")" = "$before" ] && [ "$(ls "$T/keep")" = config.json ] &&
  pass failed_sweep_leaves_folder || fail failed_sweep_leaves_folder "$(ls "$T/keep")"

# 6. Bad options.
check_fails bad_range "--end.*larger than --start" "$MSKX_BIN" lr-find --data "$DATA" "${COMMON[@]}" --start 1 --end 0.1 \
  --out "$T/x"
check_fails bad_steps "steps.*out of range|steps" "$MSKX_BIN" lr-find --data "$DATA" "${COMMON[@]}" --steps 2 --out "$T/x"
check_fails missing_data "no such|not found|cannot|does not exist" "$MSKX_BIN" lr-find --data "$T/nothing" --out "$T/x"
