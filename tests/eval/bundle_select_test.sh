# Per-part architectures end to end on synthetic data: `train --per-part` with
# an arch map (two architectures), its --resume, and `mskx bundle --select`
# over two runs of different architectures: figures (stored and computed,
# checked against `mskx eval`'s probabilities), the choice, the bundle working
# as a model, the report's comparison, and clear errors.
source "$MSKX_ROOT/tests/lib.sh"
A1="densenet:growth=4,blocks=1-1,init=8,bn_size=2"
A2="densenet:growth=6,blocks=2-1,init=8,bn_size=2"
"$MSKX_BIN" synth --out "$T/syn" --studies 120 --seed 4 --min-size 40 --max-size 56 --threads 2 >/dev/null 2>&1 ||
  { fail synth_for_bundle "mskx synth failed"; exit 0; }
D="$T/syn/MURA-v1.1"
COMMON=(--size 32 --batch 8 --threads 2 --loader-threads 2 --seed 5 --lr 1e-3 --per-part)
py() { /usr/bin/python3 - "$@"; }
meta_arch='
import json, struct, sys
def arch(p):
    raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n])["__metadata__"]["arch"]
'

# 1. An arch map: XR_HAND and XR_FINGER get A2, every other part the default A1.
check arch_map_trains "$MSKX_BIN" train --data "$D" --out "$T/map" "${COMMON[@]}" --epochs 1 \
  --arch "XR_HAND=$A2,FINGER=$A2,$A1"
if py "$T/map" "$A1" "$A2" <<PY
$meta_arch
import os
d, a1, a2 = sys.argv[1:4]
b = json.load(open(os.path.join(d, "bundle.json")))
assert len(b["models"]) == 7, b
for part, rel in b["models"].items():
    want = a2 if part in ("XR_HAND", "XR_FINGER") else a1
    assert arch(os.path.join(d, rel)) == want, (part, arch(os.path.join(d, rel)))
PY
then pass arch_map_per_part; else fail arch_map_per_part "a part's model has the wrong architecture"; fi
check arch_map_resume "$MSKX_BIN" train --resume "$T/map" --epochs 2
if py "$T/map" "$A1" "$A2" <<PY
$meta_arch
import os
d, a1, a2 = sys.argv[1:4]
for part in ("XR_HAND", "XR_WRIST"):
    assert len(open(os.path.join(d, part, "log.jsonl")).readlines()) == 2, part
    assert arch(os.path.join(d, part, "last.safetensors")) == (a2 if part == "XR_HAND" else a1), part
PY
then pass arch_map_survives_resume; else fail arch_map_survives_resume "resume lost the arch map"; fi
check_fails arch_map_needs_per_part "needs --per-part" "$MSKX_BIN" train --data "$D" --out "$T/x" --size 32 \
  --arch "XR_HAND=$A2,$A1"
check_fails arch_map_missing_default "no architecture for XR_ELBOW" "$MSKX_BIN" train --data "$D" --out "$T/x" \
  "${COMMON[@]}" --arch "XR_HAND=$A2" --parts XR_HAND,XR_ELBOW
[ ! -e "$T/x" ] && pass bad_arch_map_touches_nothing || fail bad_arch_map_touches_nothing "$T/x was created"

# 2. Two per-part runs of two architectures; the best per part by validation loss.
check run_a1 "$MSKX_BIN" train --data "$D" --out "$T/r1" "${COMMON[@]}" --epochs 2 --arch "$A1"
check run_a2 "$MSKX_BIN" train --data "$D" --out "$T/r2" "${COMMON[@]}" --epochs 2 --arch "$A2"
check select_loss "$MSKX_BIN" bundle --out "$T/best.json" --select loss --data "$D" --threads 2 "$T/r1" "$T/r2"
cp "$T/out" "$T/select.out"
sed 's/^/# /' "$T/select.out"
for r in r1 r2; do
  "$MSKX_BIN" eval --model "$T/$r/bundle.json" --data "$D" --out "$T/ev_$r" --threads 2 >/dev/null 2>&1
done
if py "$T/best.json" "$T/ev_r1/probabilities.csv" "$T/ev_r2/probabilities.csv" "$T/select.out" <<'PY'
import csv, json, math, os, sys
b = json.load(open(sys.argv[1]))
s = b["selection"]
assert b["format"] == "mskx-bundle-1" and s["metric"] == "loss" and len(s["candidates"]) == 2
def losses(path):
    acc = {}
    for r in csv.DictReader(open(path)):
        p = min(max(float(r["probability"]), 1e-7), 1 - 1e-7); y = int(r["label"])
        acc.setdefault(r["part"], []).append(-(math.log(p) if y else math.log(1 - p)))
    return {k: sum(v) / len(v) for k, v in acc.items()}
ref = [losses(sys.argv[2]), losses(sys.argv[3])]
assert set(s["parts"]) == set(ref[0]) == set(b["models"]), (s["parts"].keys(), ref[0].keys())
for part, rec in s["parts"].items():
    vals = [f["value"] for f in rec["figures"]]
    for c in range(2):
        assert rec["figures"][c]["source"] == "computed"
        assert abs(vals[c] - ref[c][part]) < 1e-9, (part, c, vals[c], ref[c][part])
    best = min(range(2), key=lambda c: (vals[c], c))
    assert rec["chosen"] == best and "lowest loss" in rec["why"], (part, rec)
    member = os.path.join(os.path.dirname(sys.argv[1]), b["models"][part])
    assert not os.path.isabs(b["models"][part]) and b["models"][part].startswith("r%d/" % (best + 1))
    assert os.path.realpath(member) == os.path.realpath(rec["figures"][best]["model"]), (member, rec)
    assert part in open(sys.argv[4]).read()
print("# chosen: " + ", ".join("%s r%d" % (p, r["chosen"] + 1) for p, r in sorted(s["parts"].items())))
PY
then pass selection_figures_and_choice; else fail selection_figures_and_choice "see above"; fi

# 3. Stored figures (kappa from training's validation) equal the recomputed ones.
check select_kappa_stored "$MSKX_BIN" bundle --out "$T/k_stored.json" --select kappa "$T/r1" "$T/r2/bundle.json"
check select_kappa_recomputed "$MSKX_BIN" bundle --out "$T/k_comp.json" --select kappa --data "$D" --recompute \
  --threads 2 "$T/r1" "$T/r2/bundle.json"
if py "$T/k_stored.json" "$T/k_comp.json" <<'PY'
import json, math, sys
a = json.load(open(sys.argv[1]))["selection"]; b = json.load(open(sys.argv[2]))["selection"]
assert a["data"] is None and b["data"]
n = 0
for part in a["parts"]:
    for fa, fb in zip(a["parts"][part]["figures"], b["parts"][part]["figures"]):
        if fa["value"] is None:
            continue
        assert fa["source"] == "stored" and fb["source"] == "computed"
        assert abs(fa["value"] - fb["value"]) < 1e-9, (part, fa, fb)
        n += 1
assert n >= 4, n
print("# %d stored kappas equal the recomputed ones" % n)
PY
then pass stored_equals_computed; else fail stored_equals_computed "see above"; fi

# 4. The bundle works as a model, and the report shows the comparison.
check bundle_evaluates "$MSKX_BIN" eval --model "$T/best.json" --data "$D" --out "$T/ev_best" --threads 2
grep -q "Per-part selection" "$T/ev_best/report.html" && grep -q "lowest validation loss" "$T/ev_best/report.html" &&
  pass report_shows_selection || fail report_shows_selection "no selection section in report.html"
grep -q "Per-part selection" "$T/ev_r1/report.html" && fail plain_bundle_report "selection shown for a plain bundle" ||
  pass plain_bundle_report
first=$(find "$D/valid" -name '*.png' | head -1)
check bundle_predicts "$MSKX_BIN" predict --model "$T/best.json" "$(dirname "$first")"

# 5. Errors.
"$MSKX_BIN" ensemble --out "$T/ens.json" --method mean "$T/r1/XR_HAND/best.safetensors" \
  "$T/r2/XR_HAND/best.safetensors" >/dev/null 2>&1
check_fails ensemble_refused "ensemble cannot serve" "$MSKX_BIN" bundle --out "$T/x.json" --select kappa "$T/ens.json"
check_fails loss_needs_data "no candidate has a loss.*--data" "$MSKX_BIN" bundle --out "$T/x.json" --select loss "$T/r1"
check_fails bad_metric "expected kappa, auc or loss" "$MSKX_BIN" bundle --out "$T/x.json" --select f1 "$T/r1"
check_fails no_candidates "no candidates" "$MSKX_BIN" bundle --out "$T/x.json" --select kappa
check_fails not_a_run "not a training run" "$MSKX_BIN" bundle --out "$T/x.json" --select kappa "$T/syn"
check_fails recompute_needs_data "needs --data" "$MSKX_BIN" bundle --out "$T/x.json" --select kappa --recompute "$T/r1"
[ ! -e "$T/x.json" ] && pass errors_write_nothing || fail errors_write_nothing "x.json written"
