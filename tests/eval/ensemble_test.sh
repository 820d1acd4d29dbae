#!/usr/bin/env bash
# mskx ensemble end to end: mean/vote/weighted/stack files load with `mskx
# predict` and combine as docs/predict.md says; stacking coefficients vs
# scikit-learn's LogisticRegression(C=1) on the members' study probabilities;
# weights vs a scipy simplex minimum; thresholds stored into ensembles and
# bundle members; bad input.
source "$MSKX_ROOT/tests/lib.sh"
PY=/usr/bin/python3
tool="$MSKX_ROOT/tests/tools/infer_model.py"
ref="$MSKX_ROOT/tests/tools/sklearn_logreg.py"

if ! "$MSKX_BIN" ensemble --help >/dev/null 2>&1; then
  fail ensemble_registered "the mskx binary has no 'ensemble' command"
  exit 0
fi

D="$T/ds" E="$T/ens"
mkdir -p "$T/m" "$E"
# Members differ in arch, input size and threshold; the bundle routes two parts.
"$MSKX_BIN" synth --out "$D" --studies 40 --min-size 48 --max-size 64 --valid-fraction 0.5 --seed 5 >/dev/null 2>&1 &&
  $PY "$tool" make "$T/m/a.safetensors" "densenet:growth=8,blocks=2-2,init=8,bn_size=2" --seed 3 --size 64 --threshold 0.5 &&
  $PY "$tool" make "$T/m/b.safetensors" "densenet:growth=4,blocks=1-2,init=8,bn_size=2" --seed 4 --size 48 --threshold 0.4 &&
  $PY "$tool" make "$T/m/c.safetensors" "densenet:growth=8,blocks=2-2,init=8,bn_size=2" --seed 7 --size 56 --threshold 0.6 &&
  printf '{"format": "mskx-bundle-1", "models": {"XR_WRIST": "a.safetensors", "XR_HAND": "b.safetensors"}, "default": "c.safetensors"}' >"$T/m/bundle.json" ||
  { fail fixtures "could not create the dataset or the models"; exit 0; }
S1=$(find "$D/MURA-v1.1/valid" -mindepth 3 -maxdepth 3 -type d | sort | head -1)
S2=$(find "$D/MURA-v1.1/valid" -mindepth 3 -maxdepth 3 -type d | sort | tail -1)
for m in a b c bundle; do
  f="$T/m/$m.safetensors"; [ "$m" = bundle ] && f="$T/m/bundle.json"
  "$MSKX_BIN" eval --model "$f" --data "$D" --out "$T/ev_$m" --bootstrap 0 --no-report --threads 1 >/dev/null 2>&1 ||
    fail "eval_$m" "eval of member $m failed"
  "$MSKX_BIN" predict --model "$f" --json --threads 1 "$S1" "$S2" >"$T/p_$m.json" 2>/dev/null
done
# Member probabilities side by side: CSV p_1,...,p_m,label in the order of a's probabilities.csv.
features() {
  $PY - "$@" <<'EOF'
import csv, sys
cols = [{r["study"]: r for r in csv.DictReader(open(f"{sys.argv[1]}/ev_{m}/probabilities.csv"))} for m in sys.argv[2:]]
for s, r in cols[0].items():
    print(",".join([repr(float(c[s]["probability"])) for c in cols] + [r["label"]]))
EOF
}

# ---- mean, without data ----
check mean_writes "$MSKX_BIN" ensemble --out "$E/mean.json" --method mean "$T/m/a.safetensors" "$T/m/b.safetensors"
check mean_json_format $PY - "$E/mean.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["format"] == "mskx-ensemble-1" and j["method"] == "mean" and j["threshold"] == 0.5, j
assert [m["path"] for m in j["members"]] == ["../m/a.safetensors", "../m/b.safetensors"], j["members"]
assert all(m["weight"] == 1 for m in j["members"]) and "stacker" not in j
EOF
check mean_predicts "$MSKX_BIN" predict --model "$E/mean.json" --json --threads 1 "$S1" "$S2"
cp "$T/out" "$T/p_mean.json"
check mean_is_mean_of_members $PY - "$T/p_mean.json" "$T/p_a.json" "$T/p_b.json" <<'EOF'
import json, sys
e, a, b = (json.load(open(f)) for f in sys.argv[1:])
for x, pa, pb in zip(e, a, b):
    mp = x["member_probabilities"]
    assert abs(mp[0] - pa["probability"]) < 1e-9 and abs(mp[1] - pb["probability"]) < 1e-9, (mp, pa, pb)
    assert abs(x["probability"] - (mp[0] + mp[1]) / 2) < 1e-12
EOF

# ---- vote (members decide with their own thresholds), with data: scored ----
check vote_writes "$MSKX_BIN" ensemble --out "$E/vote.json" --method vote --data "$D" --threads 1 \
  "$T/m/a.safetensors" "$T/m/b.safetensors" "$T/m/c.safetensors"
cp "$T/out" "$T/vote.out"
check vote_prints_scores grep -q '^ensemble (vote)' "$T/vote.out"
"$MSKX_BIN" predict --model "$E/vote.json" --json --threads 1 "$S1" "$S2" >"$T/p_vote.json" 2>"$T/err"
check vote_is_fraction_over_own_thresholds $PY - "$T/p_vote.json" "$T/p_a.json" "$T/p_b.json" "$T/p_c.json" <<'EOF'
import json, sys
e = json.load(open(sys.argv[1])); ms = [json.load(open(f)) for f in sys.argv[2:]]
for k, x in enumerate(e):
    votes = [m[k]["probability"] > m[k]["threshold"] for m in ms]
    assert abs(x["probability"] - sum(votes) / 3) < 1e-12, (x["probability"], votes)
EOF

# ---- weighted: log-loss of the weighted mean at the simplex minimum ----
check weighted_writes "$MSKX_BIN" ensemble --out "$E/weighted.json" --method weighted --data "$D" --threads 1 \
  "$T/m/a.safetensors" "$T/m/b.safetensors" "$T/m/c.safetensors"
features "$T" a b c >"$T/abc.csv"
$PY "$ref" weights "$T/abc.csv" >"$T/w_ref.json" 2>"$T/err" || fail weights_reference "$(cat "$T/err")"
check weights_minimise_log_loss $PY - "$E/weighted.json" "$T/w_ref.json" "$T/abc.csv" <<'EOF'
import json, sys, numpy as np
from sklearn.metrics import log_loss
j = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
d = np.loadtxt(sys.argv[3], delimiter=","); p, y = d[:, :-1], d[:, -1]
w = np.array([m["weight"] for m in j["members"]])
assert (w >= 0).all() and abs(w.sum() - 1) < 1e-9, w
ours = log_loss(y, np.clip(p @ w, 1e-15, 1 - 1e-15))
assert ours <= r["log_loss"] + 1e-6, (ours, r)
assert abs(j["fit"]["validation"]["log_loss"] - ours) < 1e-9
EOF

# ---- stack: logistic regression over logits, vs scikit-learn ----
check stack_writes "$MSKX_BIN" ensemble --out "$E/stack.json" --method stack --data "$D" --folds 3 --threads 1 \
  "$T/m/a.safetensors" "$T/m/b.safetensors" "$T/m/bundle.json"
cp "$T/out" "$T/stack.out"
check stack_prints_cv grep -q '3-fold cross-validated' "$T/stack.out"
features "$T" a b bundle >"$T/stack.csv"
$PY "$ref" stack "$T/stack.csv" --logit >"$T/s_ref.json" 2>"$T/err" || fail stack_reference "$(cat "$T/err")"
check stack_matches_sklearn $PY - "$E/stack.json" "$T/s_ref.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))["stacker"]; r = json.load(open(sys.argv[2]))
assert len(j["coef"]) == 3
assert max(abs(a - b) for a, b in zip(j["coef"], r["coef"])) < 1e-4, (j, r)
assert abs(j["intercept"] - r["intercept"]) < 1e-4, (j, r)
EOF
check stack_fit_record $PY -c '
import json, sys; f = json.load(open(sys.argv[1]))["fit"]
assert f["cv"]["folds"] == 3 and f["split"] == "valid" and f["C"] == 1 and len(f["members"]) == 3, f' "$E/stack.json"
"$MSKX_BIN" predict --model "$E/stack.json" --json --threads 1 "$S1" "$S2" >"$T/p_stack.json" 2>"$T/err"
check stack_combines_logits $PY - "$T/p_stack.json" "$E/stack.json" <<'EOF'
import json, math, sys
e = json.load(open(sys.argv[1])); st = json.load(open(sys.argv[2]))["stacker"]
lg = lambda p: math.log(min(max(p, 1e-6), 1 - 1e-6) / (1 - min(max(p, 1e-6), 1 - 1e-6)))
for x in e:
    z = st["intercept"] + sum(c * lg(p) for c, p in zip(st["coef"], x["member_probabilities"]))
    assert abs(x["probability"] - 1 / (1 + math.exp(-z))) < 1e-12
EOF
check eval_on_ensemble "$MSKX_BIN" eval --model "$E/stack.json" --data "$D" --out "$T/ev_stack" --bootstrap 0 --threads 1
check ensemble_report_kind grep -q 'ensemble</dd>\|ensemble (stack of 3 members)' "$T/ev_stack/report.html"

# ---- thresholds stored into an ensemble and into bundle members ----
check threshold_ensemble "$MSKX_BIN" threshold --model "$E/stack.json" --data "$D" --policy youden --json --threads 1
cp "$T/out" "$T/thr_ens.json"
check ensemble_json_threshold_rewritten $PY -c '
import json, sys
r = json.load(open(sys.argv[1]))[0]; j = json.load(open(sys.argv[2]))
assert r["stored"] and j["threshold"] == r["after"]["threshold"] and "stacker" in j and "fit" in j, (r, j["threshold"])' \
  "$T/thr_ens.json" "$E/stack.json"
check threshold_bundle "$MSKX_BIN" threshold --model "$T/m/bundle.json" --data "$D" --policy kappa --json --threads 1
cp "$T/out" "$T/thr_bundle.json"
check bundle_members_get_own_thresholds $PY - "$T/thr_bundle.json" "$T/ev_bundle/probabilities.csv" <<'EOF'
import csv, json, sys
from sklearn.metrics import cohen_kappa_score
res = json.load(open(sys.argv[1])); rows = list(csv.DictReader(open(sys.argv[2])))
assert len(res) == 3 and sorted(r["path"].rsplit("/", 1)[1] for r in res) == ["a.safetensors", "b.safetensors", "c.safetensors"]
served = {"a.safetensors": ["XR_WRIST"], "b.safetensors": ["XR_HAND"]}
for r in res:
    name = r["path"].rsplit("/", 1)[1]
    rs = [x for x in rows if (x["part"] in served[name] if name in served else x["part"] not in ("XR_WRIST", "XR_HAND"))]
    assert r["n_studies"] == len(rs), (name, r["n_studies"], len(rs))
    y = [int(x["label"]) for x in rs]; p = [float(x["probability"]) for x in rs]
    if "after" not in r:
        assert len(set(y)) < 2 and not r["stored"], r   # one class: nothing to choose
        continue
    best = max(k for k in (cohen_kappa_score(y, [int(v > t) for v in p]) for t in [-1.0] + sorted(set(p))) if k == k)
    assert abs(r["after"]["kappa"] - best) < 1e-12 and r["stored"], (name, r, best)
EOF
"$MSKX_BIN" predict --model "$T/m/bundle.json" --json --threads 1 "$S1" "$S2" >"$T/p_bundle2.json" 2>"$T/err"
check bundle_thresholds_used $PY -c '
import json, sys
res = {r["path"]: r for r in json.load(open(sys.argv[1]))}
for x in json.load(open(sys.argv[2])):
    r = res[x["model"]]
    if r["stored"]: assert x["threshold"] == r["after"]["threshold"], (x, r)' "$T/thr_bundle.json" "$T/p_bundle2.json"

# ---- bad input ----
check_fails one_member 'at least 2 member models \(got 1\)' "$MSKX_BIN" ensemble --out "$E/x.json" --method mean "$T/m/a.safetensors"
check_fails duplicate_member 'members 1 and 2 are the same file' "$MSKX_BIN" ensemble --out "$E/x.json" --method mean \
  "$T/m/a.safetensors" "$T/m/../m/a.safetensors"
check_fails stack_needs_data 'give --data' "$MSKX_BIN" ensemble --out "$E/x.json" --method stack "$T/m/a.safetensors" "$T/m/b.safetensors"
check_fails weighted_needs_data 'give --data' "$MSKX_BIN" ensemble --out "$E/x.json" --method weighted "$T/m/a.safetensors" "$T/m/b.safetensors"
check_fails ensemble_as_member 'cannot be a member' "$MSKX_BIN" ensemble --out "$E/x.json" --method mean "$T/m/a.safetensors" "$E/mean.json"
echo "junk" >"$T/junk.safetensors"
check_fails junk_member 'junk.safetensors: not an mskx model' "$MSKX_BIN" ensemble --out "$E/x.json" --method mean "$T/m/a.safetensors" "$T/junk.safetensors"
check_fails missing_member 'nope.safetensors: no such file' "$MSKX_BIN" ensemble --out "$E/x.json" --method mean "$T/m/a.safetensors" "$T/nope.safetensors"
check_fails too_many_folds 'folds' "$MSKX_BIN" ensemble --out "$E/x.json" --method stack --data "$D" --folds 40 --threads 1 \
  "$T/m/a.safetensors" "$T/m/b.safetensors"
check_fails bad_method "expected mean, vote, weighted, stack or stack-features" "$MSKX_BIN" ensemble --out "$E/x.json" --method median "$T/m/a.safetensors" "$T/m/b.safetensors"
check nothing_written_on_error test ! -e "$E/x.json"
check help "$MSKX_BIN" ensemble --help
