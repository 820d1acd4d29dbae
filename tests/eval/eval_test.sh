#!/usr/bin/env bash
# mskx eval and mskx threshold end to end on a tiny synthetic dataset and tiny
# random models: output files and formats, study probabilities vs `mskx
# predict`, metrics vs scikit-learn, agreement with `mskx score`, the report's
# self-containment, threshold choice vs a brute-force scan, and bad input.
source "$MSKX_ROOT/tests/lib.sh"
PY=/usr/bin/python3
A="densenet:growth=8,blocks=2-2,init=8,bn_size=2"
tool="$MSKX_ROOT/tests/tools/infer_model.py"

if ! "$MSKX_BIN" eval --help >/dev/null 2>&1; then
  fail eval_registered "the mskx binary has no 'eval' command"
  exit 0
fi

D="$T/ds" M="$T/run/best.safetensors" O="$T/ev"
mkdir -p "$T/run"
"$MSKX_BIN" synth --out "$D" --studies 40 --min-size 48 --max-size 64 --valid-fraction 0.5 --seed 3 >/dev/null 2>&1 &&
  $PY "$tool" make "$M" "$A" --seed 5 --size 64 --threshold 0.5 ||
  { fail fixtures "could not create the dataset or the model"; exit 0; }
TRUTH="$D/MURA-v1.1/valid_labeled_studies.csv"
NV=$(wc -l <"$TRUTH")

check eval_runs "$MSKX_BIN" eval --model "$M" --data "$D" --out "$O" --bootstrap 1000 --threads 1
cp "$T/out" "$T/table.txt"; cp "$T/err" "$T/eval.err"
check writes_all_files test -s "$O/predictions.csv" -a -s "$O/probabilities.csv" -a -s "$O/metrics.json" -a -s "$O/report.html"
check table_beside_paper grep -Eq "^overall +$NV .*\| 0\.705  0\.731  0\.763  0\.778" "$T/table.txt"
check progress_on_stderr grep -q "\[eval\] $NV/$NV studies" "$T/eval.err"

# predictions.csv: MURA's format, one line per labelled study, decision = p > threshold.
check predictions_format $PY - "$O" "$TRUTH" <<'EOF'
import csv, re, sys
o, truth = sys.argv[1], sys.argv[2]
lines = open(f"{o}/predictions.csv").read().splitlines()
pat = re.compile(r"^MURA-v1\.1/valid/XR_[A-Z]+/patient\d+/study\d+_(positive|negative)/,[01]$")
assert all(pat.match(l) for l in lines), [l for l in lines if not pat.match(l)][:3]
studies = [l.split(",")[0] for l in open(truth).read().splitlines()]
assert sorted(l.split(",")[0] for l in lines) == sorted(studies)
prob = {r["study"]: r for r in csv.DictReader(open(f"{o}/probabilities.csv"))}
assert list(next(csv.reader(open(f"{o}/probabilities.csv")))) == ["study", "part", "n_images", "probability", "label"]
for l in lines:
    s, d = l.split(",")
    r = prob[s]
    assert int(d) == (float(r["probability"]) > 0.5), (l, r)
    assert r["part"] == re.search(r"XR_[A-Z]+", s).group(0)
    assert r["label"] == ("1" if "_positive" in s else "0")
EOF

# Study probability = mean of the image probabilities that `mskx predict` gives.
"$MSKX_BIN" predict --model "$M" --json --threads 1 $(cut -d, -f1 "$TRUTH" | sed "s|^|$D/|") >"$T/pred.json" 2>"$T/err"
check probabilities_match_predict $PY - "$O/probabilities.csv" "$T/pred.json" "$D/" <<'EOF'
import csv, json, sys
prob = {r["study"]: r for r in csv.DictReader(open(sys.argv[1]))}
pred = json.load(open(sys.argv[2]))
assert len(pred) == len(prob)
for s in pred:
    key = s["study"][len(sys.argv[3]):].rstrip("/") + "/"
    imgs = [i["probability"] for i in s["images"]]
    r = prob[key]
    assert int(r["n_images"]) == len(imgs), key
    assert abs(float(r["probability"]) - sum(imgs) / len(imgs)) < 1e-6, (key, r, imgs)
EOF

# --agg max and --tta flip reach the predictor as `mskx predict` passes them.
check eval_max_flip "$MSKX_BIN" eval --model "$M" --data "$D" --out "$T/mf" --agg max --tta flip --bootstrap 0 --no-report --threads 1
"$MSKX_BIN" predict --model "$M" --json --threads 1 --agg max --tta flip $(cut -d, -f1 "$TRUTH" | sed "s|^|$D/|") >"$T/pmf.json" 2>"$T/err"
check max_flip_match_predict $PY - "$T/mf/probabilities.csv" "$T/pmf.json" "$D/" "$T/mf/metrics.json" <<'EOF'
import csv, json, sys
prob = {r["study"]: float(r["probability"]) for r in csv.DictReader(open(sys.argv[1]))}
for s in json.load(open(sys.argv[2])):
    key = s["study"][len(sys.argv[3]):].rstrip("/") + "/"
    assert abs(prob[key] - max(i["probability"] for i in s["images"])) < 1e-6, key
    assert abs(prob[key] - s["probability"]) < 1e-6, key
run = json.load(open(sys.argv[4]))["run"]
assert run["agg"] == "max" and run["tta"] == "flip", run
EOF

# metrics.json vs scikit-learn on probabilities.csv; its shape.
check metrics_match_sklearn $PY - "$O/metrics.json" "$O/probabilities.csv" <<'EOF'
import csv, json, sys, warnings
from sklearn.metrics import cohen_kappa_score, roc_auc_score, confusion_matrix
warnings.simplefilter("ignore")
m = json.load(open(sys.argv[1])); rows = list(csv.DictReader(open(sys.argv[2])))
groups = {"overall": rows}
for r in rows: groups.setdefault(r["part"], []).append(r)
assert set(m["parts"]) == set(groups) - {"overall"}
assert m["bootstrap"]["resamples"] == 1000 and m["run"]["studies_predicted"] == len(rows)
for g, rs in groups.items():
    got = m["overall"] if g == "overall" else m["parts"][g]
    y = [int(r["label"]) for r in rs]; p = [float(r["probability"]) for r in rs]; d = [int(x > 0.5) for x in p]
    k = cohen_kappa_score(y, d)
    assert (got["kappa"] is None and k != k) or abs(got["kappa"] - k) < 1e-9, (g, got["kappa"], k)
    if len(set(y)) == 2: assert abs(got["auc"] - roc_auc_score(y, p)) < 1e-9, g
    assert got["confusion"] == confusion_matrix(y, d, labels=[0, 1]).tolist(), g
    assert got["n_studies"] == len(rs) and got["threshold"] == 0.5
    for key in ("kappa", "auc", "accuracy", "sensitivity", "specificity", "precision", "f1"):
        assert key in got and key + "_ci" in got, key
lo, hi = m["overall"]["kappa_ci"]; assert lo <= m["overall"]["kappa"] <= hi
EOF

"$MSKX_BIN" score --pred "$O/predictions.csv" --truth "$TRUTH" --json --bootstrap 0 >"$T/score.json" 2>"$T/err"
check score_agrees_with_eval $PY - "$T/score.json" "$O/metrics.json" <<'EOF'
import json, sys
s, m = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
for g in ["overall"] + list(m["parts"]):
    a = s["overall"] if g == "overall" else s["parts"][g]; b = m["overall"] if g == "overall" else m["parts"][g]
    assert a["kappa"] == b["kappa"] or (a["kappa"] is None and b["kappa"] is None), (g, a["kappa"], b["kappa"])
    assert a["confusion"] == b["confusion"], g
EOF

# The report: nothing loaded from elsewhere, PNGs embedded and decodable, synthetic banner.
R="$O/report.html"
check report_no_external_refs bash -c "! grep -Eq 'http://|https://|src=\"http|<link|<script|url\\(' '$R'"
check report_synthetic_banner grep -q 'Synthetic data' "$R"
check report_pngs_decode $PY - "$R" <<'EOF'
import base64, io, re, sys
from PIL import Image
html = open(sys.argv[1]).read()
srcs = re.findall(r'<img [^>]*src="([^"]*)"', html)
assert len(srcs) >= 4, len(srcs)
for s in srcs:
    assert s.startswith("data:image/png;base64,"), s[:40]
    Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))).verify()
EOF

check eval_json "$MSKX_BIN" eval --model "$M" --data "$D" --out "$T/o2" --bootstrap 1000 --threads 1 --json --no-report
cp "$T/out" "$T/o2.stdout"
check json_equals_metrics_file cmp -s "$T/o2.stdout" "$T/o2/metrics.json"
check no_report_flag test ! -e "$T/o2/report.html"

# Training curves: from the model's run folder (log.jsonl beside it).
printf '{"epoch": 1, "lr": 0.001, "train_loss": 0.71, "val": {"loss": 0.69, "kappa": 0.05, "auc": 0.55}, "best": true}\n{"epoch": 2, "lr": 0.001, "train_loss": 0.62, "val": {"loss": 0.66, "kappa": 0.21, "auc": 0.63}, "best": true}\n' >"$T/run/log.jsonl"
check eval_with_run_log "$MSKX_BIN" eval --model "$M" --data "$D" --out "$T/o3" --bootstrap 0 --threads 1
check report_has_training grep -q 'best epoch 2: validation kappa 0.210' "$T/o3/report.html"
echo '{"epoch": 3, "train_loss": ' >>"$T/run/log.jsonl"
check bad_log_still_reports "$MSKX_BIN" eval --model "$M" --data "$D" --out "$T/o4" --bootstrap 0 --threads 1
cp "$T/err" "$T/badlog.err"
check bad_log_warns grep -q 'log.jsonl:3: not a JSON object' "$T/badlog.err"
mkdir -p "$T/emptyrun"
check run_without_log "$MSKX_BIN" eval --model "$M" --data "$D" --out "$T/o5" --bootstrap 0 --threads 1 --run "$T/emptyrun"
cp "$T/err" "$T/nolog.err"
check run_without_log_warns grep -q 'emptyrun holds no log.jsonl' "$T/nolog.err"

# CAM overlays for every image.
check cam_dir "$MSKX_BIN" eval --model "$M" --data "$D" --out "$T/o6" --bootstrap 0 --threads 1 --no-report --cam "$T/cams"
NI=$(wc -l <"$D/MURA-v1.1/valid_image_paths.csv")
check cam_one_png_per_image test "$(ls "$T/cams" | grep -c '\.png$')" = "$NI"

# ---- threshold ----
cp "$M" "$T/thr.safetensors"
check threshold_kappa "$MSKX_BIN" threshold --model "$T/thr.safetensors" --data "$D" --policy kappa --json --threads 1
cp "$T/out" "$T/thr.json"
check threshold_is_brute_force_max $PY - "$T/thr.json" "$O/probabilities.csv" <<'EOF'
import csv, json, sys
from sklearn.metrics import cohen_kappa_score
r = json.load(open(sys.argv[1]))[0]; rows = list(csv.DictReader(open(sys.argv[2])))
y = [int(x["label"]) for x in rows]; p = [float(x["probability"]) for x in rows]
cuts = sorted(set(p)); best = -2
for t in [-1.0] + cuts:   # every achievable split: studies with p > t abnormal
    k = cohen_kappa_score(y, [int(v > t) for v in p])
    if k == k: best = max(best, k)
t = r["after"]["threshold"]
assert abs(r["after"]["kappa"] - best) < 1e-12, (r, best)
assert abs(cohen_kappa_score(y, [int(v > t) for v in p]) - best) < 1e-12
assert r["before"]["threshold"] == 0.5 and r["stored"] is True and r["n_studies"] == len(rows)
EOF
check eval_uses_stored_threshold "$MSKX_BIN" eval --model "$T/thr.safetensors" --data "$D" --out "$T/o7" --bootstrap 0 --threads 1 --no-report
check stored_threshold_in_metrics $PY - "$T/thr.json" "$T/o7/metrics.json" "$T/o7/predictions.csv" "$O/probabilities.csv" <<'EOF'
import csv, json, sys
r = json.load(open(sys.argv[1]))[0]; m = json.load(open(sys.argv[2]))
t = r["after"]["threshold"]
assert m["overall"]["threshold"] == t and abs(m["overall"]["kappa"] - r["after"]["kappa"]) < 1e-12
p = {x["study"]: float(x["probability"]) for x in csv.DictReader(open(sys.argv[4]))}
for l in open(sys.argv[3]).read().splitlines():
    s, d = l.split(","); assert int(d) == (p[s] > t), l
EOF
cp "$T/thr.safetensors" "$T/thr.before"
check threshold_dry_run "$MSKX_BIN" threshold --model "$T/thr.safetensors" --data "$D" --policy youden --dry-run --threads 1
check dry_run_changes_nothing cmp -s "$T/thr.safetensors" "$T/thr.before"
check threshold_sensitivity "$MSKX_BIN" threshold --model "$T/thr.safetensors" --data "$D" --policy sensitivity=0.9 --json --threads 1
cp "$T/out" "$T/sens.json"
check sensitivity_is_highest_reaching $PY - "$T/sens.json" "$O/probabilities.csv" <<'EOF'
import csv, json, sys
r = json.load(open(sys.argv[1]))[0]; rows = list(csv.DictReader(open(sys.argv[2])))
pos = sorted(float(x["probability"]) for x in rows if x["label"] == "1")
t = r["after"]["threshold"]
sens = lambda t: sum(v > t for v in pos) / len(pos)
assert sens(t) >= 0.9 - 1e-12, (t, sens(t))
higher = [v for v in sorted(set(float(x["probability"]) for x in rows)) if v > t]
assert not higher or sens(higher[0]) < 0.9, (t, higher[0])
EOF

# ---- bad input ----
echo "not a model" >"$T/junk.safetensors"
check_fails not_a_model 'junk.safetensors: not an mskx model' "$MSKX_BIN" eval --model "$T/junk.safetensors" --data "$D" --out "$T/x"
check_fails missing_data 'required' "$MSKX_BIN" eval --model "$M"
check_fails missing_dataset 'nope' "$MSKX_BIN" eval --model "$M" --data "$T/nope"
mkdir -p "$T/tree" && cp -r "$D/MURA-v1.1/valid" "$T/tree/"
check_fails empty_split 'train split has no studies' "$MSKX_BIN" eval --model "$M" --data "$T/tree" --split train --out "$T/x"
check_fails bad_split "expected valid or train" "$MSKX_BIN" eval --model "$M" --data "$D" --split test
check_fails too_few_resamples 'too few' "$MSKX_BIN" eval --model "$M" --data "$D" --bootstrap 10
check_fails unknown_option "see 'mskx eval --help'" "$MSKX_BIN" eval --bogus
check_fails bad_policy "expected kappa, youden or sensitivity" "$MSKX_BIN" threshold --model "$M" --data "$D" --policy f1
check_fails threshold_needs_policy 'required' "$MSKX_BIN" threshold --model "$M" --data "$D"

# Unreadable image: skipped with a warning and counted (default), an error with --strict.
cp -r "$T/tree" "$T/bad"
IMG=$(find "$T/bad/valid" -name '*.png' | sort | head -1)
head -c 100 "$IMG" >"$IMG.tmp" && mv "$IMG.tmp" "$IMG"
check unreadable_skipped "$MSKX_BIN" eval --model "$M" --data "$T/bad" --out "$T/o8" --bootstrap 0 --threads 1
cp "$T/err" "$T/unreadable.err"
check unreadable_warned grep -q 'warning: 1 unreadable images skipped' "$T/unreadable.err"
check unreadable_counted $PY -c 'import json,sys; r=json.load(open(sys.argv[1]))["run"]; assert r["skipped_images"] == 1 and len(r["skipped_messages"]) == 1, r' "$T/o8/metrics.json"
check_fails unreadable_strict "$(basename "$IMG")" "$MSKX_BIN" eval --model "$M" --data "$T/bad" --out "$T/o9" --strict --threads 1
check help "$MSKX_BIN" eval --help
