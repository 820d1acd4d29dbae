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

source "$MSKX_ROOT/tests/serve/serve_lib.sh"

# Default limits: 16 images per study, 16384 x 16384 pixels each.
if start_server bomb --quiet; then
  timeout 600 $py "$client" rss "$url" "$pid" "$fx/zero.png" 16 "$RSS_LIMIT_MB"
  kill "$pid"
fi

# A budget that holds one interlaced 16384 x 16384 image (1 byte per pixel
# while its passes are collected) but not two; no wait, so that the second
# study's 503 does not depend on how fast the first one's images decode (it
# could only slip into the microseconds between two of them).
if start_server budget --quiet --decode-budget 400000000 --decode-wait 0; then
  timeout 600 $py "$client" busy "$url" "$fx/zero_il.png" 4
  kill "$pid"
fi
if start_server small_budget --quiet --decode-budget 100000000; then
  timeout 600 $py "$client" too_big "$url" "$fx/zero_il.png"
  kill "$pid"
fi
check_fails cli_bad_decode_budget "--decode-budget" "$MSKX_BIN" serve --model "$fx/tiny.safetensors" --decode-budget 0
check_fails cli_bad_decode_wait "--decode-wait" "$MSKX_BIN" serve --model "$fx/tiny.safetensors" --decode-wait -1
