# mskx train end to end on a tiny synthetic dataset: run-folder files, exact
# resume after a kill, per-part bundles, and clear errors for bad options.
source "$MSKX_ROOT/tests/lib.sh"
ARCH="densenet:growth=4,blocks=1-1,init=8,bn_size=2"
COMMON=(--arch "$ARCH" --size 32 --batch 8 --threads 2 --loader-threads 2 --seed 5 --lr 1e-3)
"$MSKX_BIN" synth --out "$T/syn" --studies 40 --seed 3 --min-size 40 --max-size 56 --threads 2 >/dev/null 2>&1 ||
  { fail synth_for_training "mskx synth failed"; exit 0; }
DATA="$T/syn/MURA-v1.1"
py() { /usr/bin/python3 - "$@"; }

# 1. A run leaves its files, with one log line per epoch.
check train_runs "$MSKX_BIN" train --data "$DATA" --out "$T/a" "${COMMON[@]}" --epochs 3
if py "$T/a" <<'PY'
import json, os, sys, struct
d = sys.argv[1]
lines = [json.loads(l) for l in open(os.path.join(d, "log.jsonl"))]
assert [l["epoch"] for l in lines] == [1, 2, 3], lines
for l in lines:
    for k in ("lr", "train_loss", "val", "images_per_s", "seconds"):
        assert k in l, k
    assert {"loss", "kappa", "auc", "accuracy", "parts"} <= set(l["val"]), l["val"]
cfg = json.load(open(os.path.join(d, "config.json")))
assert cfg["arch"].startswith("densenet:") and cfg["epochs"] == 3 and cfg["size"] == 32
for name in ("last.safetensors", "best.safetensors"):
    raw = open(os.path.join(d, name), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    meta = json.loads(raw[8:8 + n])["__metadata__"]
    assert meta["format"] == "mskx-model-1" and meta["size"] == "32" and meta["arch"] == cfg["arch"], meta
    assert ("train_state" in meta) == (name == "last.safetensors"), name
PY
then pass run_folder_contents; else fail run_folder_contents "log/config/checkpoint check failed"; fi

# 2. Kill after the first checkpoint, resume: bit-identical to the uninterrupted run.
"$MSKX_BIN" train --data "$DATA" --out "$T/b" "${COMMON[@]}" --epochs 3 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ -s "$T/b/log.jsonl" ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.1
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
killed_at=$(wc -l < "$T/b/log.jsonl" 2>/dev/null || echo 0)
echo "# killed after $killed_at epoch(s)"
check resume_runs "$MSKX_BIN" train --resume "$T/b"
if py "$T/a/last.safetensors" "$T/b/last.safetensors" <<'PY'
import sys
sys.path.insert(0, __import__("os").environ["MSKX_ROOT"] + "/tests/tools")
from sttools import load_safetensors
import numpy as np
a, _ = load_safetensors(sys.argv[1]); b, _ = load_safetensors(sys.argv[2])
assert a.keys() == b.keys()
bad = [k for k in a if not np.array_equal(a[k], b[k])]
assert not bad, "differs: %s" % bad[:5]
print("# %d tensors identical" % len(a))
PY
then pass resume_is_bit_identical; else fail resume_is_bit_identical "weights differ after resume"; fi
lines=$(wc -l < "$T/b/log.jsonl")
[ "$lines" = 3 ] && pass resume_log_complete || fail resume_log_complete "log has $lines lines"

# 3. Extending a finished run with --epochs.
check resume_extends "$MSKX_BIN" train --resume "$T/a" --epochs 4
[ "$(wc -l < "$T/a/log.jsonl")" = 4 ] && pass resume_extends_log || fail resume_extends_log "expected 4 log lines"

# 4. Per-part: one model per part and a bundle routing to them.
check per_part_runs "$MSKX_BIN" train --data "$DATA" --out "$T/pp" "${COMMON[@]}" --epochs 1 --per-part \
  --parts XR_WRIST,XR_HAND
if py "$T/pp" <<'PY'
import json, os, sys
d = sys.argv[1]
b = json.load(open(os.path.join(d, "bundle.json")))
assert b["format"] == "mskx-bundle-1" and set(b["models"]) == {"XR_HAND", "XR_WRIST"}, b
for p in b["models"].values():
    assert os.path.exists(os.path.join(d, p)), p
PY
then pass per_part_bundle; else fail per_part_bundle "bundle.json check failed"; fi
# A part's folder whose path would not fit the run's path field is an error
# naming it, not a cut path (--out is 1015 characters, + "/XR_WRIST").
long="$T"
while [ ${#long} -lt 1015 ]; do long="$long/$(printf 'd%.0s' $(seq 1 120))"; done
long=${long:0:1015}
check_fails per_part_path_too_long "run folder's path is 1024 characters long, more than the 1023 allowed: '$T" \
  "$MSKX_BIN" train --data "$DATA" --out "$long" "${COMMON[@]}" --epochs 1 --per-part --parts XR_WRIST

# 5. Bad input: clear errors before any training.
check_fails refuses_existing_run "already holds a training run" "$MSKX_BIN" train --data "$DATA" --out "$T/a" "${COMMON[@]}"
check_fails unknown_option "see 'mskx train --help'" "$MSKX_BIN" train --data "$DATA" --out "$T/x" --bogus
check_fails batch_zero "batch.*out of range" "$MSKX_BIN" train --data "$DATA" --out "$T/x" --batch 0
check_fails negative_lr "lr.*out of range" "$MSKX_BIN" train --data "$DATA" --out "$T/x" --lr -1
check_fails size_not_divisible "needs a multiple of 8" "$MSKX_BIN" train --data "$DATA" --out "$T/x" --arch "$ARCH" --size 36
check_fails unknown_arch "unknown arch" "$MSKX_BIN" train --data "$DATA" --out "$T/x" --arch vgg16
check_fails missing_data "$T/nope" "$MSKX_BIN" train --data "$T/nope" --out "$T/x" "${COMMON[@]}"
check_fails bad_optimizer "optimizer" "$MSKX_BIN" train --data "$DATA" --out "$T/x" --optimizer adagrad
check_fails bad_class_weights "class-weights" "$MSKX_BIN" train --data "$DATA" --out "$T/x" "${COMMON[@]}" --class-weights 0:1,1:
check_fails resume_without_run "no training run" "$MSKX_BIN" train --resume "$T/empty-dir"
# A training split with one class only (a generic CSV of the normal studies).
{ echo "image_path,label,split"
  grep negative "$DATA/train_image_paths.csv" | sed 's|^MURA-v1.1/||; s|$|,0,train|'
  grep negative "$DATA/valid_image_paths.csv" | head -5 | sed 's|^MURA-v1.1/||; s|$|,0,valid|'
  grep positive "$DATA/valid_image_paths.csv" | head -5 | sed 's|^MURA-v1.1/||; s|$|,1,valid|'; } > "$DATA/oneclass.csv"
check_fails one_class_split "only normal images" "$MSKX_BIN" train --data "$DATA/oneclass.csv" --out "$T/x1" "${COMMON[@]}"

# 6. The preprocessing cache: built once in the run folder, reused by a later run.
check cache_run "$MSKX_BIN" train --data "$DATA" --out "$T/c" "${COMMON[@]}" --epochs 1 --cache
n=$(ls "$T/c"/*.mskxcache 2>/dev/null | wc -l)
[ "$n" = 2 ] && pass cache_files_written || fail cache_files_written "expected train and valid caches, found $n"
before=$(stat -c %Y "$T/c/train_32.mskxcache" 2>/dev/null)
sleep 1
check cache_reused "$MSKX_BIN" train --resume "$T/c" --epochs 2
after=$(stat -c %Y "$T/c/train_32.mskxcache" 2>/dev/null)
[ -n "$before" ] && [ "$before" = "$after" ] && pass cache_not_rebuilt || fail cache_not_rebuilt "cache rewritten ($before -> $after)"

# 7. Mixed precision (bf16 convolutions, fp32 master weights) trains end to end.
if grep -q avx512_bf16 /proc/cpuinfo; then
  check bf16_run "$MSKX_BIN" train --data "$DATA" --out "$T/bf" "${COMMON[@]}" --epochs 2 --precision bf16
  n=$(wc -l < "$T/bf/log.jsonl" 2>/dev/null || echo 0)
  [ "$n" = 2 ] && pass bf16_log || fail bf16_log "expected 2 epochs logged, found $n"
else
  echo "# skipped bf16 training: this CPU has no native bf16"
fi

# 8. A full disk: the checkpoint's temporary is a link to /dev/full (the same
# pid after exec), so writing last.safetensors fails with ENOSPC. The error
# says why, and nothing partial is left in the run folder.
if [ -w /dev/full ]; then
  mkdir -p "$T/full"
  bash -c 'ln -s /dev/full "$1/last.safetensors.tmp.$$"; shift; exec "$@"' _ "$T/full" \
    "$MSKX_BIN" train --data "$DATA" --out "$T/full" "${COMMON[@]}" --epochs 1 >"$T/out" 2>"$T/err"
  rc=$?
  if [ "$rc" = 1 ] && grep -q "last.safetensors: write failed: No space left on device" "$T/err"; then
    pass full_disk_says_why
  else
    fail full_disk_says_why "exit $rc: $(head -c 300 "$T/err")"
  fi
  left=$(ls -A "$T/full" | grep -c '\.tmp\.')
  [ "$left" = 0 ] && [ ! -e "$T/full/last.safetensors" ] && pass full_disk_leaves_nothing_partial ||
    fail full_disk_leaves_nothing_partial "$(ls -A "$T/full" | tr '\n' ' ')"
  # Output to a full stdout is an error too, not a silent exit 0.
  check_fails full_stdout_says_why "No space left on device" bash -c '"$0" train --help >/dev/full' "$MSKX_BIN"
else
  echo "# skipped full-disk checks: no /dev/full"
fi

# 9. Unreadable training images: a few are skipped and counted, more than
# --max-skipped (default 0.01) is an error, an epoch with none readable too.
cp -r "$T/syn" "$T/bad"
BAD="$T/bad/MURA-v1.1"
corrupt() { while read -r rel; do printf 'not an image' > "$T/bad/$rel"; done; }
sed -n '1~10p' "$BAD/train_image_paths.csv" | corrupt   # 9 of 89
# (drop_last: an epoch reads 88 of the 89 images, in a seeded order)
check_fails skipped_over_limit "epoch 1: [89] of 88 training images \([0-9.]+%\) were unreadable, more than --max-skipped 0\.01" \
  "$MSKX_BIN" train --data "$BAD" --out "$T/sk0" "${COMMON[@]}" --epochs 1
check skipped_under_limit "$MSKX_BIN" train --data "$BAD" --out "$T/sk1" "${COMMON[@]}" --epochs 1 --max-skipped 0.2
if py "$T/sk1" <<'PY'
import json, os, sys
d = sys.argv[1]
cfg = json.load(open(os.path.join(d, "config.json")))
assert cfg["max_skipped"] == 0.2, cfg.get("max_skipped")
l = json.loads(open(os.path.join(d, "log.jsonl")).readline())
assert l["skipped_images"] in (8, 9) and abs(l["lr"] - 1e-3) < 1e-12 and l["train_loss"] is not None, l
PY
then pass skipped_logged_with_lr; else fail skipped_logged_with_lr "config.json or log.jsonl check failed"; fi
# --resume takes the limit from config.json: with the default it would stop.
check resume_keeps_max_skipped "$MSKX_BIN" train --resume "$T/sk1" --epochs 2
sed -n '1~2p' "$BAD/train_image_paths.csv" | corrupt   # 45 of 89
check_fails resume_checks_max_skipped "more than --max-skipped 0\.2 allows" "$MSKX_BIN" train --resume "$T/sk1" --epochs 3
corrupt < "$BAD/train_image_paths.csv"
check_fails no_readable_training_image "epoch 1: no training image could be read \(88 unreadable\)" \
  "$MSKX_BIN" train --data "$BAD" --out "$T/sk2" "${COMMON[@]}" --epochs 1 --max-skipped 1
[ ! -e "$T/sk2/log.jsonl" ] && pass no_readable_epoch_not_logged || fail no_readable_epoch_not_logged "$(cat "$T/sk2/log.jsonl")"
check_fails max_skipped_range "max-skipped.*out of range" "$MSKX_BIN" train --data "$DATA" --out "$T/x" --max-skipped 1.5

# 10. SIGTERM / SIGINT: the run stops at a step boundary (a checkpoint being
# written is finished first), leaves no temporary, says what is saved and how
# to go on, and exits 128 + the signal; --resume then finishes the run.
stop_run() {  # NAME SIGNAL DIR: starts a long run, signals it after its first epoch; sets rc
  "$MSKX_BIN" train --data "$DATA" --out "$3" "${COMMON[@]}" --epochs 1000 >"$T/$1.out" 2>"$T/$1.err" &
  local pid=$!
  for _ in $(seq 1 600); do
    [ -s "$3/log.jsonl" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
  done
  kill -"$2" $pid 2>/dev/null
  wait $pid
  rc=$?
}
stop_run term TERM "$T/st"
if [ "$rc" = 143 ] && grep -q "interrupted by SIGTERM: stopped during epoch [0-9]* of 1000; epoch [0-9]* is saved in $T/st/last.safetensors" "$T/term.err" &&
   grep -q "continue with: mskx train --resume $T/st" "$T/term.err"; then
  pass sigterm_exits_143_with_message
else
  fail sigterm_exits_143_with_message "exit $rc: $(tail -c 300 "$T/term.err")"
fi
left=$(ls -A "$T/st" | grep -c '\.tmp\.')
[ "$left" = 0 ] && pass sigterm_leaves_no_temporary || fail sigterm_leaves_no_temporary "$(ls -A "$T/st" | tr '\n' ' ')"
done_epochs=$(wc -l < "$T/st/log.jsonl")
# A temporary of an interrupted write (a SIGKILL, a power cut) is removed by
# --resume; files that are not the run's own stay.
touch "$T/st/last.safetensors.tmp.4194303" "$T/st/log.jsonl.tmp.77" "$T/st/notes.txt.tmp.1"
"$MSKX_BIN" train --resume "$T/st" --epochs $((done_epochs + 1)) >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" = 0 ] && [ "$(wc -l < "$T/st/log.jsonl")" = $((done_epochs + 1)) ] && pass sigterm_then_resume_finishes ||
  fail sigterm_then_resume_finishes "exit $rc: $(tail -c 300 "$T/err")"
if [ ! -e "$T/st/last.safetensors.tmp.4194303" ] && [ ! -e "$T/st/log.jsonl.tmp.77" ] && [ -e "$T/st/notes.txt.tmp.1" ] &&
   grep -q "removed 2 temporary files left by an interrupted run" "$T/err"; then
  pass resume_removes_stale_temporaries
else
  fail resume_removes_stale_temporaries "$(ls -A "$T/st" | tr '\n' ' '): $(head -c 300 "$T/err")"
fi
# The interrupted and resumed run ends bit-identical to an uninterrupted one.
check sigterm_reference_run "$MSKX_BIN" train --data "$DATA" --out "$T/st_ref" "${COMMON[@]}" --epochs $((done_epochs + 1))
if py "$T/st_ref/last.safetensors" "$T/st/last.safetensors" <<'PY'
import sys
sys.path.insert(0, __import__("os").environ["MSKX_ROOT"] + "/tests/tools")
from sttools import load_safetensors
import numpy as np
a, _ = load_safetensors(sys.argv[1]); b, _ = load_safetensors(sys.argv[2])
assert a.keys() == b.keys()
bad = [k for k in a if not np.array_equal(a[k], b[k])]
assert not bad, "differs: %s" % bad[:5]
PY
then pass sigterm_resume_is_bit_identical; else fail sigterm_resume_is_bit_identical "weights differ"; fi
# Per-part runs: temporaries in the part folders too.
touch "$T/pp/XR_WRIST/best.safetensors.tmp.12" "$T/pp/bundle.json.tmp.13"
check resume_per_part_cleans "$MSKX_BIN" train --resume "$T/pp"
[ ! -e "$T/pp/XR_WRIST/best.safetensors.tmp.12" ] && [ ! -e "$T/pp/bundle.json.tmp.13" ] &&
  pass resume_per_part_temporaries_removed || fail resume_per_part_temporaries_removed "$(ls -A "$T/pp" "$T/pp/XR_WRIST" | tr '\n' ' ')"
stop_run int INT "$T/si"
[ "$rc" = 130 ] && grep -q "interrupted by SIGINT" "$T/int.err" && [ "$(ls -A "$T/si" | grep -c '\.tmp\.')" = 0 ] &&
  pass sigint_exits_130 || fail sigint_exits_130 "exit $rc: $(tail -c 300 "$T/int.err")"
