# The prediction queue and dynamic batching of `mskx serve` on loopback with
# a tiny random model (tests/tools/infer_model.py): queue full and deadline
# answers (503 + Retry-After), readiness, a client that leaves while queued
# (dropped, never computed), batched answers equal to `mskx predict`'s, 32
# concurrent clients all answered, and metrics that add up
# (tests/serve/queue_client.py); the default --queue derived from the
# model's measured speed.
source "$MSKX_ROOT/tests/lib.sh"
py=/usr/bin/python3
client="$MSKX_ROOT/tests/serve/queue_client.py"
tool="$MSKX_ROOT/tests/tools/infer_model.py"
arch="densenet:growth=8,blocks=2-2,init=8,bn_size=2"
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done' EXIT

fx="$T/fx"
mkdir -p "$fx/study"
$py "$tool" make "$fx/tiny.safetensors" "$arch" --seed 5 --size 64 --threshold 0.5 &&
$py "$tool" png "$fx/study/image1.png:64:64:1" "$fx/study/image2.png:80:60:2" "$fx/study/image3.png:72:72:3" &&
"$MSKX_BIN" predict --model "$fx/tiny.safetensors" --json "$fx/study" > "$fx/ref.json" &&
for i in 1 2 3; do "$MSKX_BIN" predict --model "$fx/tiny.safetensors" --json "$fx/study/image$i.png" > "$fx/ref_$i.json" || exit 1; done ||
  { fail fixtures "could not write the model, images or reference predictions"; exit 0; }

check_fails cli_bad_queue "--queue" "$MSKX_BIN" serve --model "$fx/tiny.safetensors" --queue 0
check_fails cli_bad_timeout_ms "--timeout-ms" "$MSKX_BIN" serve --model "$fx/tiny.safetensors" --timeout-ms 0
check_fails cli_bad_max_batch "--max-batch" "$MSKX_BIN" serve --model "$fx/tiny.safetensors" --max-batch 0
check_fails cli_bad_max_delay "--max-delay-ms" "$MSKX_BIN" serve --model "$fx/tiny.safetensors" --max-delay-ms -1

source "$MSKX_ROOT/tests/serve/serve_lib.sh"

if start_server H --queue 4 --max-batch 64 --max-delay-ms 1500 --threads 1 --max-concurrent 1; then
  run_py held held "$url" "$pid" "$fx"
  check held_access_log_deadline grep -Eq 'POST /v1/predict 503 [0-9.]+ ms - busy: the request.s deadline passed' "$T/H.log"
  check held_access_log_client_gone grep -Eq 'POST /v1/predict - [0-9.]+ ms - client closed the connection while queued' "$T/H.log"
  kill -TERM "$pid"
  wait "$pid"
  [ $? = 0 ] && pass held_server_stops || fail held_server_stops "exit status not 0"
fi

# The default --queue is derived from the model's speed measured at start
# (docs/serve.md): what /v1/health/ready reports follows the rule from the
# reported seconds per image, schedulers and deadline, and the start line
# says the same; a shorter deadline aims at less work; --queue overrides it.
# So does the default --max-batch: 16 when the reported pass of 15 images
# was at least 5% faster per image than one 3-image study, else 3;
# --max-batch overrides it.
queue_rule() {  # NAME URL TIMEOUT_MS DERIVED [CAPACITY [MAX_BATCH]]: checks /v1/health/ready against the rules
  check "$1" $py - "$2" "$3" "$4" "${5:-}" "${6:-}" "$T/$1.log" <<'PYEOF'
import json, math, re, sys, urllib.request
url, timeout_ms, derived, cap, max_batch = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5]
h = json.load(urllib.request.urlopen(url + "/v1/health/ready", timeout=10))
t, w = h["seconds_per_image"], h["schedulers"]
assert t > 0 and w >= 1 and h["queue_derived"] == derived, h
work = min(10.0, timeout_ms / 2000.0)
assert abs(h["queue_work_seconds"] - work) < 1e-9, h
want = min(128, max(32, math.floor(work * w / (3 * t)))) if derived else int(cap)
assert h["queue_capacity"] == want, (h, want)
log = open(sys.argv[6]).read()
m = re.search(r"queue (\d+) studies \((default|--queue)", log)
assert m and int(m.group(1)) == want and (m.group(2) == "default") == derived, log[:400]
m = re.search(r"max batch (\d+) \((default|--max-batch)", log)
if max_batch:
    assert h["max_batch"] == int(max_batch) and h["max_batch_derived"] is False, h
    assert h["batch_images"] == 0 and h["batch_seconds_per_image"] == 0, h
    assert m and int(m.group(1)) == int(max_batch) and m.group(2) == "--max-batch", log[:600]
else:
    t15 = h["batch_seconds_per_image"]
    assert h["max_batch_derived"] is True and h["batch_images"] == 15 and t15 > 0, h
    want_mb = 16 if t15 <= (1 - 0.05) * t else 3
    assert h["max_batch"] == want_mb, (h, want_mb)
    assert m and int(m.group(1)) == want_mb and m.group(2) == "default", log[:600]
print(h["queue_capacity"], t, h["max_batch"], h.get("batch_seconds_per_image"))
PYEOF
}
if start_server D --threads 1; then
  cp "$T/D.log" "$T/queue_default_follows_rule.log"
  queue_rule queue_default_follows_rule "$url" 30000 1
  kill -TERM "$pid"; wait "$pid"
fi
if start_server D2 --threads 1 --timeout-ms 40; then
  cp "$T/D2.log" "$T/queue_default_short_deadline.log"
  queue_rule queue_default_short_deadline "$url" 40 1
  kill -TERM "$pid"; wait "$pid"
fi
if start_server D3 --threads 1 --queue 5 --max-batch 5; then
  cp "$T/D3.log" "$T/queue_explicit.log"
  queue_rule queue_explicit "$url" 30000 0 5 5
  kill -TERM "$pid"; wait "$pid"
fi

# Each client opens a connection per request: the per-address limit must exceed 32.
if start_server M --threads 1 --max-per-ip 64; then
  run_py many many "$url" "$pid" "$fx"
  kill -TERM "$pid"
  wait "$pid"
  [ $? = 0 ] && pass many_server_stops || fail many_server_stops "exit status not 0"
fi
