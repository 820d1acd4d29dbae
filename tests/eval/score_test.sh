#!/usr/bin/env bash
# mskx score end to end: kappa/AUROC per part and overall vs scikit-learn on
# the same files, output forms, and every bad-input case with its message.
source "$MSKX_ROOT/tests/lib.sh"
PY=/usr/bin/python3
D="$T/data"
mkdir -p "$D"

# A MURA-like valid split: 7 parts, probabilities with ties, labels from the path.
$PY - "$D" <<'PYEOF'
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(7)
parts = {"XR_ELBOW": 40, "XR_FINGER": 35, "XR_FOREARM": 30, "XR_HAND": 45, "XR_HUMERUS": 25, "XR_SHOULDER": 50, "XR_WRIST": 60}
with open(f"{d}/truth.csv", "w") as t, open(f"{d}/pred.csv", "w") as p, open(f"{d}/dec.csv", "w") as q:
    pid = 10000
    for part, n in parts.items():
        for i in range(n):
            y = int(rng.uniform() < 0.45)
            pid += 1
            path = f"MURA-v1.1/valid/{part}/patient{pid}/study1_{'positive' if y else 'negative'}/"
            s = round(float(1 / (1 + np.exp(-(rng.normal() * 1.3 + (1.2 if y else -1.0))))), 2)
            t.write(f"{path},{y}\n")
            p.write(f"{path},{s}\n")
            q.write(f"{path},{int(s > 0.5)}\n")
PYEOF

# Compares mskx's JSON with sklearn on the same CSVs (threshold 0.5).
compare() {  # json_file pred_file
  $PY - "$1" "$2" "$D/truth.csv" <<'PYEOF'
import json, sys, math, warnings
from sklearn.metrics import cohen_kappa_score, roc_auc_score, confusion_matrix
warnings.simplefilter("ignore")
res = json.load(open(sys.argv[1]))
truth = dict(l.strip().split(",") for l in open(sys.argv[3]) if l.strip())
pred = [l.strip().split(",") for l in open(sys.argv[2]) if l.strip()]
dec = all(float(v) in (0.0, 1.0) for _, v in pred)
groups = {"overall": pred}
for path, v in pred:
    groups.setdefault(next(c for c in path.split("/") if c.startswith("XR_")), []).append((path, v))
bad = []
for g, rows in groups.items():
    y = [int(truth[p]) for p, _ in rows]; s = [float(v) for _, v in rows]; yp = [int(x > 0.5) for x in s]
    got = res["overall"] if g == "overall" else res["parts"][g]
    if abs(got["kappa"] - cohen_kappa_score(y, yp)) > 1e-9: bad.append(f"{g} kappa {got['kappa']}")
    if dec:
        if got["auc"] is not None: bad.append(f"{g} auc not null for decisions")
    elif abs(got["auc"] - roc_auc_score(y, s)) > 1e-9: bad.append(f"{g} auc {got['auc']}")
    if got["confusion"] != confusion_matrix(y, yp, labels=[0, 1]).tolist(): bad.append(f"{g} confusion")
    if got["n_studies"] != len(rows): bad.append(f"{g} n_studies")
    lo, hi = got["kappa_ci"]
    if not (lo <= got["kappa"] <= hi): bad.append(f"{g} kappa CI [{lo}, {hi}]")
if set(res["parts"]) != set(groups) - {"overall"}: bad.append("parts differ")
print("; ".join(bad)); sys.exit(1 if bad else 0)
PYEOF
}

P="$D/pred.csv" TR="$D/truth.csv"
N=$(wc -l <"$TR")
if "$MSKX_BIN" score --pred "$P" --truth "$TR" --json --bootstrap 1000 >"$D/out.json" 2>"$T/err"; then
  check json_matches_sklearn compare "$D/out.json" "$P"
else fail json_matches_sklearn "$(cat "$T/err")"; fi

check out_written "$MSKX_BIN" score --pred "$P" --truth "$TR" --bootstrap 1000 --out "$D/o2.json"
cp "$T/out" "$D/table.txt"
check out_equals_json cmp -s "$D/out.json" "$D/o2.json"
check out_is_table_on_stdout grep -q '^XR_WRIST ' "$D/table.txt"
check table_has_overall_and_paper grep -Eq "^overall +$N .*\| 0\.705" "$D/table.txt"

check decisions_auc_null "$MSKX_BIN" score --pred "$D/dec.csv" --truth "$TR" --json --out "$D/dec.json"
check decisions_match_sklearn compare "$D/dec.json" "$D/dec.csv"

# CRLF and missing trailing slashes are accepted and change nothing.
sed -e 's|/,|,|' -e 's|$|\r|' "$P" >"$D/crlf.csv"
"$MSKX_BIN" score --pred "$D/crlf.csv" --truth "$TR" --json --bootstrap 1000 >"$D/crlf.json" 2>"$T/err"
check crlf_and_no_slash_same_result cmp -s "$D/out.json" "$D/crlf.json"

check same_seed_same_output cmp -s <("$MSKX_BIN" score --pred "$P" --truth "$TR" --json --seed 3) \
  <("$MSKX_BIN" score --pred "$P" --truth "$TR" --json --seed 3)

# ---- bad input: non-zero exit and a message naming the problem ----
bad() {  # name, pattern, pred-content-command (edits $P into $D/bad.csv), [truth file]
  local n=$1 pat=$2 edit=$3 tr=${4:-$TR}
  eval "$edit" >"$D/bad.csv"
  check_fails "$n" "$pat" "$MSKX_BIN" score --pred "$D/bad.csv" --truth "$tr"
}
bad no_comma 'bad.csv:3: expected' "sed '3s/,/ /' '$P'"
bad non_numeric "bad.csv:5: value 'high' is not a number" "sed '5s/,.*/,high/' '$P'"
bad header_line 'bad.csv:1: .*no header' "{ echo 'Path,Probability'; cat '$P'; }"
bad out_of_range 'bad.csv:2: value 1.5 is outside \[0, 1\]' "sed '2s/,.*/,1.5/' '$P'"
bad negative 'bad.csv:2: value -0.1 is outside' "sed '2s/,.*/,-0.1/' '$P'"
bad nan_value 'bad.csv:4: value is NaN' "sed '4s/,.*/,nan/' '$P'"
bad duplicate_pred "bad.csv:$((N + 1)): duplicate study .* \\(first at line 7\\)" "cat '$P'; sed -n 7p '$P'"
bad unknown_study "bad.csv: 2 of $((N + 2)) predicted studies are not in .*XR_WRIST/patient1/study1/. \\(line $((N + 1))\\)" \
  "cat '$P'; echo 'MURA-v1.1/valid/XR_WRIST/patient1/study1/,0.3'; echo 'MURA-v1.1/valid/XR_HAND/patient2/study1/,0.3'"
bad missing_studies "truth.csv: 3 of $N labelled studies have no prediction in .*patient10010" "sed '10,12d' '$P'"
cp "$T/err" "$D/missing.txt"
check missing_hints_allow_missing grep -q 'pass --allow-missing' "$D/missing.txt"
bad no_part 'bad.csv:1: study path .* has no XR_<PART> component' "sed '1s|XR_[A-Z]*|ELBOW|' '$P'"
bad empty_pred 'bad.csv: no predictions \(empty file\)' "true"
sed 's|/valid/|/train/|' "$TR" >"$D/train.csv"
bad wrong_split "split 'valid' but .*train.csv labels split 'train'" "cat '$P'" "$D/train.csv"
sed '6s/,.*/,2/' "$TR" >"$D/badlab.csv"
bad label_not_01 "badlab.csv:6: label '2' is not 0 or 1" "cat '$P'" "$D/badlab.csv"
{ cat "$TR"; sed -n 9p "$TR"; } >"$D/duptruth.csv"
bad duplicate_truth "duptruth.csv:$((N + 1)): duplicate study" "cat '$P'" "$D/duptruth.csv"
: >"$D/empty.csv"
bad empty_truth 'empty.csv: no labelled studies \(empty file\)' "cat '$P'" "$D/empty.csv"
bad missing_file 'nope.csv: cannot open' "cat '$P'" "$D/nope.csv"
printf 'x\0y\n' >"$D/binary.csv"
bad binary_truth 'binary.csv: contains NUL' "cat '$P'" "$D/binary.csv"

sed '10,12d' "$P" >"$D/sub.csv"
check allow_missing_scores_subset "$MSKX_BIN" score --pred "$D/sub.csv" --truth "$TR" --allow-missing --json
cp "$T/err" "$D/warn.txt"
check allow_missing_warns grep -q 'warning: 3 labelled studies' "$D/warn.txt"
check_fails requires_truth 'required' "$MSKX_BIN" score --pred "$P"
check_fails too_few_resamples 'too few' "$MSKX_BIN" score --pred "$P" --truth "$TR" --bootstrap 10
check_fails bad_threshold 'threshold' "$MSKX_BIN" score --pred "$P" --truth "$TR" --threshold 2
check_fails unknown_option "see 'mskx score --help'" "$MSKX_BIN" score --bogus
check help "$MSKX_BIN" score --help
