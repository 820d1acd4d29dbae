# The prediction queue and dynamic batching of `mskx serve` on loopback with
# a tiny random model (tests/tools/infer_model.py): queue full and deadline
# answers (503 + Retry-After), readiness, a client that leaves while queued
# (dropped, never computed), batched answers equal to `mskx predict`'s, 32
# concurrent clients all answered, and metrics that add up
# (tests/serve/queue_client.py).
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

# Each client opens a connection per request: the per-address limit must exceed 32.
if start_server M --threads 1 --max-per-ip 64; then
  run_py many many "$url" "$pid" "$fx"
  kill -TERM "$pid"
  wait "$pid"
  [ $? = 0 ] && pass many_server_stops || fail many_server_stops "exit status not 0"
fi
