# mskx ensemble --method stack-features end to end on synthetic data: two
# members of two architectures trained on the train split, the stacker fit on
# valid; its scaler, coefficients and probabilities against scikit-learn's
# StandardScaler + LogisticRegression on the same features (through
# `mskx eval` of the written file, so prediction recomputes the features);
# out-of-fold figures; predict; errors.
source "$MSKX_ROOT/tests/lib.sh"
A1="densenet:growth=4,blocks=1-1,init=8,bn_size=2"
A2="densenet:growth=6,blocks=2-1,init=8,bn_size=2"
"$MSKX_BIN" synth --out "$T/syn" --studies 200 --seed 7 --min-size 40 --max-size 56 --valid-fraction 0.4 \
  --finding-scale 4 --threads 2 >/dev/null 2>&1 || { fail synth_for_stack "mskx synth failed"; exit 0; }
D="$T/syn/MURA-v1.1"
for i in 1 2; do
  eval A=\$A$i
  check "member_${i}_trains" "$MSKX_BIN" train --data "$D" --out "$T/m$i" --arch "$A" --size 32 --batch 8 --threads 2 \
    --loader-threads 2 --seed $i --epochs 3 --lr 1e-3
done
M1="$T/m1/best.safetensors"; M2="$T/m2/best.safetensors"
check stack_features_fits "$MSKX_BIN" ensemble --out "$T/sf.json" --method stack-features --data "$D" --fit-split valid \
  --folds 5 --threads 2 --features-csv "$T/features.csv" "$M1" "$M2"
cp "$T/out" "$T/fit.out"; cp "$T/err" "$T/fit.err"
sed 's/^/# /' "$T/fit.out"
grep -q "must not have been trained on it" "$T/fit.err" && pass says_members_not_trained_on_fit_split ||
  fail says_members_not_trained_on_fit_split "$(head -c 300 "$T/fit.err")"
grep -Eq "^out-of-fold kappa -?[0-9.]+ \[-?[0-9.]+, -?[0-9.]+\], AUROC [0-9.]+ \[[0-9.]+, [0-9.]+\]" "$T/fit.out" &&
  pass reports_out_of_fold_with_cis || fail reports_out_of_fold_with_cis "$(cat "$T/fit.out")"
check eval_stack_features "$MSKX_BIN" eval --model "$T/sf.json" --data "$D" --out "$T/ev" --threads 2
C=$(/usr/bin/python3 -c "import json,sys; print(repr(json.load(open(sys.argv[1]))['stacker']['C']))" "$T/sf.json")
/usr/bin/python3 "$MSKX_ROOT/tests/tools/sklearn_logreg.py" features "$T/features.csv" --C "$C" >"$T/sk.json" 2>/dev/null
if /usr/bin/python3 - "$T/sf.json" "$T/sk.json" "$T/ev/probabilities.csv" "$T/fit.out" <<'PY'
import csv, json, sys
import numpy as np
f = json.load(open(sys.argv[1])); st = f["stacker"]; sk = json.load(open(sys.argv[2]))
assert f["method"] == "stack-features" and len(st["dims"]) == 2 and sum(st["dims"]) == len(st["coef"])
def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-3)))
worst = {k: rel(st[k], sk[k]) for k in ("mean", "scale", "coef")}
worst["intercept"] = rel([st["intercept"]], [sk["intercept"]])
probs = {r["study"]: float(r["probability"]) for r in csv.DictReader(open(sys.argv[3]))}
assert set(probs) == set(sk["prob"]), "eval and the fit saw different studies"
worst["prob"] = rel([probs[s] for s in sk["prob"]], list(sk["prob"].values()))
assert all(v <= 1e-6 for v in worst.values()), worst
fit = f["fit"]
assert fit["warning"] and fit["cv"]["folds"] == 5 and len(fit["C_grid"]) == 13
best = min(fit["C_grid"], key=lambda g: (g["cv_log_loss"], g["C"]))
assert best["C"] == st["C"], (best, st["C"])
oof = fit["cv"]["kappa"]; members = [m["kappa"] for m in fit["members"]]
print("# vs scikit-learn, largest relative differences: " + ", ".join("%s %.1e" % kv for kv in worst.items()))
print("# out-of-fold kappa %.4f (AUROC %.4f); members' kappa on the fit split %s" %
      (oof, fit["cv"]["auc"], ", ".join("%.4f" % k for k in members)))
PY
then pass matches_sklearn_scaler_logreg; else fail matches_sklearn_scaler_logreg "see above"; fi
first=$(find "$D/valid" -name '*.png' | head -1)
check predict_stack_features "$MSKX_BIN" predict --model "$T/sf.json" "$(dirname "$first")" --json
grep -q '"probability"' "$T/out" && pass predict_output || fail predict_output "$(head -c 300 "$T/out")"

# Errors: a bundle member, too many folds, no data.
"$MSKX_BIN" train --data "$D" --out "$T/pp" --arch "$A1" --size 32 --batch 8 --threads 2 --epochs 1 --per-part \
  --parts XR_WRIST >/dev/null 2>&1
check_fails bundle_member_refused "must be model files" "$MSKX_BIN" ensemble --out "$T/x.json" --method stack-features \
  --data "$D" "$M1" "$T/pp/bundle.json"
check_fails too_many_folds "cross-validation needs at least" "$MSKX_BIN" ensemble --out "$T/x.json" \
  --method stack-features --data "$D" --folds 60 "$M1" "$M2"
check_fails needs_data "give --data" "$MSKX_BIN" ensemble --out "$T/x.json" --method stack-features "$M1" "$M2"
[ ! -e "$T/x.json" ] && pass errors_write_nothing || fail errors_write_nothing "x.json written"
