# Data-parallel training under mpirun on a tiny synthetic dataset: with
# --sync-bn two processes end with the weights of one process (same seed,
# same global batches) up to float summation order; without it they differ;
# bucket size changes nothing; resume under mpirun is bit-identical; bad
# option combinations, a process that cannot read its data and a killed
# process all end the job with a clear message and leave the last checkpoint
# intact. Skipped only when mskx is built without MPI.
source "$MSKX_ROOT/tests/lib.sh"
help=$("$MSKX_BIN" train --help) || { fail train_help "mskx train --help failed"; exit 0; }
if grep -q "built without MPI" <<<"$help"; then
  echo "# skipped: built without MPI"
  exit 0
fi
grep -q "built with MPI" <<<"$help" || { fail train_help "--help does not say whether MPI is built in"; exit 0; }
if ! command -v mpirun >/dev/null; then
  fail mpirun_present "mskx is built with MPI but mpirun is not on PATH (install openmpi-bin)"
  exit 0
fi
# OpenMPI refuses root without these; the vader setting avoids ptrace-based
# copies that containers forbid; OpenMPI's own allocations are not ours to leak-check.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
MPIRUN=(timeout 120 mpirun --oversubscribe --bind-to none --stdin none)  # mpirun would read our stdin
ARCH="densenet:growth=4,blocks=1-1,init=8,bn_size=2"
COMMON=(--arch "$ARCH" --size 32 --batch 8 --threads 1 --loader-threads 1 --seed 5 --lr 1e-3)
"$MSKX_BIN" synth --out "$T/syn" --studies 40 --seed 3 --min-size 40 --max-size 56 --threads 2 >/dev/null 2>&1 ||
  { fail synth_for_training "mskx synth failed"; exit 0; }
DATA="$T/syn/MURA-v1.1"
py() { /usr/bin/python3 - "$@"; }

# compare A B MAXREL [MINREL]: weights and batch-norm buffers of two checkpoints;
# passes when max |a - b| / max |a| <= MAXREL (and >= MINREL if given).
compare() {
  py "$@" <<'PY'
import os, sys
sys.path.insert(0, os.environ["MSKX_ROOT"] + "/tests/tools")
from sttools import load_safetensors
import numpy as np
a, _ = load_safetensors(sys.argv[1]); b, _ = load_safetensors(sys.argv[2])
hi = float(sys.argv[3]); lo = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
keys = [k for k in a if not k.startswith("train_state.")]
assert keys and set(keys) == {k for k in b if not k.startswith("train_state.")}
diff = max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) if a[k].size else 0.0 for k in keys)
scale = max(float(np.max(np.abs(a[k]))) if a[k].size else 0.0 for k in keys)
print("# max abs diff %.3e, weight scale %.3f, relative %.3e (%d tensors)" % (diff, scale, diff / scale, len(keys)))
assert lo <= diff / scale <= hi, "relative difference %.3e outside [%g, %g]" % (diff / scale, lo, hi)
PY
}

# 1. Equivalence with --sync-bn: 2 epochs x 5 steps, default augmentation,
#    tiny buckets so the gradient all-reduce runs in many overlapping pieces.
STEPS=(--epochs 2 --max-batches 5 --sync-bn)
for opt in adam sgd; do
  check "one_process_$opt" "$MSKX_BIN" train --data "$DATA" --out "$T/one_$opt" "${COMMON[@]}" "${STEPS[@]}" --optimizer $opt
  check "two_processes_$opt" "${MPIRUN[@]}" -np 2 "$MSKX_BIN" train --data "$DATA" --out "$T/two_$opt" "${COMMON[@]}" \
    "${STEPS[@]}" --optimizer $opt --bucket-kb 1
done
# SGD passes gradient differences through linearly: only summation order is
# left. Adam divides by sqrt(v), which magnifies the noise of near-zero gradients.
if compare "$T/one_sgd/last.safetensors" "$T/two_sgd/last.safetensors" 1e-6; then pass sync_bn_equivalence_sgd
else fail sync_bn_equivalence_sgd "2-process weights differ from 1-process weights"; fi
if compare "$T/one_adam/last.safetensors" "$T/two_adam/last.safetensors" 1e-4; then pass sync_bn_equivalence_adam
else fail sync_bn_equivalence_adam "2-process weights differ from 1-process weights"; fi
if py "$T/one_adam/log.jsonl" "$T/two_adam/log.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]; b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 2, (len(a), len(b))
for x, y in zip(a, b):
    assert abs(x["train_loss"] - y["train_loss"]) < 1e-5, (x["train_loss"], y["train_loss"])
    assert abs(x["val"]["loss"] - y["val"]["loss"]) < 1e-5, (x["val"]["loss"], y["val"]["loss"])
    assert "processes" not in x and y["processes"] == 2 and 0 <= y["comm_share"] <= 1, y
PY
then pass sync_bn_same_losses; else fail sync_bn_same_losses "losses or log fields differ"; fi
lines=$(grep -c "epoch 1/2  train loss" "$T/err" || true)
[ "$lines" = 1 ] && pass rank0_alone_reports || fail rank0_alone_reports "epoch summary printed $lines times"

# 2. Bucket size is a scheduling choice: the default single bucket gives the same bits.
check two_processes_one_bucket "${MPIRUN[@]}" -np 2 "$MSKX_BIN" train --data "$DATA" --out "$T/two_b" "${COMMON[@]}" \
  "${STEPS[@]}" --optimizer adam
if compare "$T/two_adam/last.safetensors" "$T/two_b/last.safetensors" 0; then pass buckets_do_not_change_results
else fail buckets_do_not_change_results "results depend on the bucket size"; fi

# 3. Per-process batch norm (the default) trains too, and is another computation.
check two_processes_local_bn "${MPIRUN[@]}" -np 2 "$MSKX_BIN" train --data "$DATA" --out "$T/two_local" "${COMMON[@]}" \
  --epochs 2 --max-batches 5
if compare "$T/one_adam/last.safetensors" "$T/two_local/last.safetensors" 10 1e-3; then pass local_bn_differs
else fail local_bn_differs "per-process batch norm should not match the global-batch run"; fi

# 4. Resume under mpirun: 1 epoch then --resume to 3 equals 3 epochs straight.
R=(--max-batches 4 --sync-bn)
check resume_reference "${MPIRUN[@]}" -np 2 "$MSKX_BIN" train --data "$DATA" --out "$T/ra" "${COMMON[@]}" "${R[@]}" --epochs 3
check resume_first "${MPIRUN[@]}" -np 2 "$MSKX_BIN" train --data "$DATA" --out "$T/rb" "${COMMON[@]}" "${R[@]}" --epochs 1
check resume_rest "${MPIRUN[@]}" -np 2 "$MSKX_BIN" train --resume "$T/rb" --epochs 3
if compare "$T/ra/last.safetensors" "$T/rb/last.safetensors" 0; then pass resume_is_bit_identical
else fail resume_is_bit_identical "resumed 2-process run differs"; fi
grep -q '"sync_bn":.*true' "$T/rb/config.json" && pass sync_bn_saved || fail sync_bn_saved "config.json lacks sync_bn"

# 5. Bad combinations fail on every process before any file is written.
check_fails batch_must_divide "does not split evenly over 3 processes" \
  "${MPIRUN[@]}" -np 3 "$MSKX_BIN" train --data "$DATA" --out "$T/x3" "${COMMON[@]}"
[ ! -e "$T/x3" ] && pass batch_error_writes_nothing || fail batch_error_writes_nothing "run folder created"
check_fails options_must_agree "disagree on the training options" \
  "${MPIRUN[@]}" -np 1 "$MSKX_BIN" train --data "$DATA" --out "$T/x4" "${COMMON[@]}" : \
  -np 1 "$MSKX_BIN" train --data "$DATA" --out "$T/x4" "${COMMON[@]}" --lr 0.5
# (MPMD launch: rank 1 gets another command line, as a host with another view of the files would.)
check_fails rank1_missing_data "rank 1: .*nowhere.*stopping all processes" \
  "${MPIRUN[@]}" -np 1 "$MSKX_BIN" train --data "$DATA" --out "$T/x5" "${COMMON[@]}" : \
  -np 1 "$MSKX_BIN" train --data "$T/nowhere" --out "$T/x5" "${COMMON[@]}"
grep -q "rank 1 of 2: .*nowhere" "$T/err" && pass failing_rank_prints || fail failing_rank_prints "$(head -c 300 "$T/err")"

# 6. A process that cannot read its data mid-run (strict mode): rank 1 resumes
#    from a copy of the run folder whose dataset has truncated images.
# (--cache-budget 0: the images are decoded each epoch, not read from a decoded cache)
check strict_first_epoch "${MPIRUN[@]}" -np 2 "$MSKX_BIN" train --data "$DATA" --out "$T/s" "${COMMON[@]}" \
  --epochs 1 --max-batches 3 --strict --cache-budget 0
cp -r "$T/syn" "$T/bad" && find "$T/bad/MURA-v1.1/train" -name '*.png' -exec truncate -s 20 {} +
cp -r "$T/s" "$T/s1"
sed -i "s#\"data\":.*#\"data\": \"$T/bad/MURA-v1.1\",#" "$T/s1/config.json"
before=$(sha256sum < "$T/s/last.safetensors")
t0=$(date +%s)
check_fails rank1_unreadable_image "rank 1: .*truncated.*stopping all processes" \
  "${MPIRUN[@]}" -np 1 "$MSKX_BIN" train --resume "$T/s" --epochs 2 : -np 1 "$MSKX_BIN" train --resume "$T/s1" --epochs 2
echo "# the job stopped after $(( $(date +%s) - t0 )) s"
[ "$(sha256sum < "$T/s/last.safetensors")" = "$before" ] && [ "$(wc -l < "$T/s/log.jsonl")" = 1 ] &&
  pass checkpoint_intact_after_failure || fail checkpoint_intact_after_failure "last.safetensors or log changed"

# 7. SIGKILL one process mid-run: mpirun ends the job, the checkpoint resumes.
"${MPIRUN[@]}" -np 2 "$MSKX_BIN" train --data "$DATA" --out "$T/k" "${COMMON[@]}" --epochs 200 >/dev/null 2>"$T/k.err" &
mp=$!
for _ in $(seq 1 600); do [ -s "$T/k/log.jsonl" ] && break; kill -0 $mp 2>/dev/null || break; sleep 0.1; done
victim=$(pgrep -P "$(pgrep -P $mp mpirun || echo $mp)" mskx | tail -1)
t0=$(date +%s)
if [ -n "$victim" ]; then kill -9 "$victim"; fi
wait $mp; rc=$?
secs=$(( $(date +%s) - t0 ))
echo "# killed pid ${victim:-none}; mpirun exited with $rc after $secs s"
if [ -n "$victim" ] && [ "$rc" != 0 ] && [ "$rc" != 124 ] && [ "$secs" -le 60 ]; then pass killed_rank_ends_job
else fail killed_rank_ends_job "rc $rc after $secs s: $(tail -c 300 "$T/k.err")"; fi
done_epochs=$(wc -l < "$T/k/log.jsonl")
check resume_after_kill "${MPIRUN[@]}" -np 2 "$MSKX_BIN" train --resume "$T/k" --epochs $((done_epochs + 1))
[ "$(wc -l < "$T/k/log.jsonl")" = $((done_epochs + 1)) ] && pass resume_after_kill_log || fail resume_after_kill_log \
  "expected $((done_epochs + 1)) log lines"

# 8. SIGTERM to one process: every process stops at the same step (the stop is
#    agreed like an error), rank 0 says what is saved, no temporary is left.
"${MPIRUN[@]}" -np 2 "$MSKX_BIN" train --data "$DATA" --out "$T/tm" "${COMMON[@]}" --epochs 1000 >/dev/null 2>"$T/tm.err" &
mp=$!
for _ in $(seq 1 600); do [ -s "$T/tm/log.jsonl" ] && break; kill -0 $mp 2>/dev/null || break; sleep 0.1; done
victim=$(pgrep -P "$(pgrep -P $mp mpirun || echo $mp)" mskx | tail -1)
if [ -n "$victim" ]; then kill -TERM "$victim"; fi
wait $mp; rc=$?
if [ -n "$victim" ] && [ "$rc" != 0 ] && [ "$rc" != 124 ] &&
   grep -q "interrupted by SIGTERM: .*stopped during epoch [0-9]* of 1000; epoch [0-9]* is saved in" "$T/tm.err"; then
  pass sigterm_one_rank_stops_job
else
  fail sigterm_one_rank_stops_job "rc $rc: $(grep -v '^epoch' "$T/tm.err" | head -c 300)"
fi
[ "$(ls -A "$T/tm" | grep -c '\.tmp\.')" = 0 ] && pass sigterm_job_leaves_no_temporary ||
  fail sigterm_job_leaves_no_temporary "$(ls -A "$T/tm" | tr '\n' ' ')"
done_epochs=$(wc -l < "$T/tm/log.jsonl")
check resume_after_sigterm "${MPIRUN[@]}" -np 2 "$MSKX_BIN" train --resume "$T/tm" --epochs $((done_epochs + 1))

# 9. An MPI call that fails in one process (injected: tests/dist/mpi_fault.c,
#    preloaded into rank 1 only, gives its Nth all-reduce an invalid count, a
#    real MPI error). MPI_ERRORS_RETURN makes it an mskx error on rank 1, and
#    the others, waiting in a collective that can no longer complete, are told
#    and fail too: every process names the failure, the job ends non-zero
#    within seconds (not by the timeout) and nothing is written. Call 40 falls
#    inside the first steps' --sync-bn sums; call 3 on an agreement at start.
FAULT="$MSKX_BUILD/tests/libmskx_mpi_fault.so"
if [ ! -f "$FAULT" ]; then
  fail mpi_fault_injector "$FAULT is not built"
else
  for n in 40 3; do
    rm -rf "$T/f$n"
    t0=$(date +%s)
    # The injector comes before ASan's runtime in the preload order.
    "${MPIRUN[@]}" -np 1 "$MSKX_BIN" train --data "$DATA" --out "$T/f$n" "${COMMON[@]}" --epochs 1 --max-batches 3 \
      --sync-bn : -np 1 env LD_PRELOAD="$FAULT" MSKX_FAULT_ALLREDUCE=$n \
      ASAN_OPTIONS="$ASAN_OPTIONS:verify_asan_link_order=0" "$MSKX_BIN" train --data "$DATA" --out "$T/f$n" \
      "${COMMON[@]}" --epochs 1 --max-batches 3 --sync-bn >/dev/null 2>"$T/f$n.err"
    rc=$?
    secs=$(( $(date +%s) - t0 ))
    echo "# fault at all-reduce $n: mpirun exited with $rc after $secs s"
    if [ "$rc" != 0 ] && [ "$rc" != 124 ] && [ "$secs" -le 60 ] &&
       grep -q "rank 1 of 2: MPI Allreduce.* failed: MPI_ERR_COUNT" "$T/f$n.err" &&
       grep -q "rank 0 of 2: rank 1 failed: MPI Allreduce.* failed: MPI_ERR_COUNT" "$T/f$n.err"; then
      pass "mpi_fault_${n}_reported_by_every_rank"
    else
      fail "mpi_fault_${n}_reported_by_every_rank" "rc $rc after $secs s: $(grep -v '^epoch' "$T/f$n.err" | head -c 600)"
    fi
    [ ! -e "$T/f$n/last.safetensors" ] && pass "mpi_fault_${n}_writes_no_checkpoint" ||
      fail "mpi_fault_${n}_writes_no_checkpoint" "a checkpoint was written"
  done
  grep -q "batch-norm sums (--sync-bn)" "$T/f40.err" && pass mpi_fault_inside_sync_bn ||
    fail mpi_fault_inside_sync_bn "call 40 did not fall in a --sync-bn sum: $(grep -v '^epoch' "$T/f40.err" | head -c 300)"
fi
