# Decompression amplification (issue 12 item 2) against `mskx serve` on
# loopback: a 4.2 MB study of sixteen 16384 x 16384 all-zero PNGs must be
# answered (with CAM overlays) in bounded memory, and the decode budget must
# turn away what it cannot hold (tests/serve/bomb_client.py).
source "$MSKX_ROOT/tests/lib.sh"
py=/usr/bin/python3
client="$MSKX_ROOT/tests/serve/bomb_client.py"
tool="$MSKX_ROOT/tests/tools/infer_model.py"
arch="densenet:growth=8,blocks=2-2,init=8,bn_size=2"
# Peak RSS allowed for the whole server while it answers the study. Before
# streaming decode the same request (without overlays) peaked at 4.0 GiB.
RSS_LIMIT_MB=600
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done' EXIT

fx="$T/fx"
mkdir -p "$fx"
$py "$tool" make "$fx/tiny.safetensors" "$arch" --seed 5 --size 64 --threshold 0.5 &&
  $py "$client" png "$fx/zero.png" 16384 16384 &&
  $py "$client" png "$fx/zero_il.png" 16384 16384 interlaced ||
  { fail bomb_fixtures "could not write the model or the PNGs"; exit 0; }

# start NAME ARGS...: a server on a free port; sets pid and url.
start() {
  local name=$1; shift
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8" \
    "$MSKX_BIN" serve --model "$fx/tiny.safetensors" --port 0 --quiet "$@" 2> "$T/$name.log" &
  pid=$!
  pids+=("$pid")
  url=""
  for _ in $(seq 300); do
    url=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$T/$name.log" | sed 's/listening on //')
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$url" ] && pass "${name}_starts" && return 0
  fail "${name}_starts" "$(head -c 300 "$T/$name.log")"
  return 1
}

# Default limits: 16 images per study, 16384 x 16384 pixels each.
if start bomb; then
  timeout 600 $py "$client" rss "$url" "$pid" "$fx/zero.png" 16 "$RSS_LIMIT_MB"
  kill "$pid"
fi

# A budget that holds one interlaced 16384 x 16384 image (1 byte per pixel
# while its passes are collected) but not two; no wait, so that the second
# study's 503 does not depend on how fast the first one's images decode (it
# could only slip into the microseconds between two of them).
if start budget --decode-budget 400000000 --decode-wait 0; then
  timeout 600 $py "$client" busy "$url" "$fx/zero_il.png" 4
  kill "$pid"
fi
if start small_budget --decode-budget 100000000; then
  timeout 600 $py "$client" too_big "$url" "$fx/zero_il.png"
  kill "$pid"
fi
check_fails cli_bad_decode_budget "--decode-budget" "$MSKX_BIN" serve --model "$fx/tiny.safetensors" --decode-budget 0
check_fails cli_bad_decode_wait "--decode-wait" "$MSKX_BIN" serve --model "$fx/tiny.safetensors" --decode-wait -1
