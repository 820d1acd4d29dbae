# End-to-end tests of `mskx serve` on loopback with a tiny random model
# (written by PyTorch, tests/tools/infer_model.py): endpoints and answers vs
# `mskx predict --json`, CAM overlays, bad uploads, limits, 50 concurrent
# clients, slow clients (slowloris, slow bodies, per-address limit), request
# smuggling, escaped access log, no server paths in answers, RSS, graceful
# SIGTERM (tests/serve/http_client.py,
# standard library only), and the viewer in a real browser (chromium driven
# by playwright-core, tests/serve/browser/).
source "$MSKX_ROOT/tests/lib.sh"
py=/usr/bin/python3
client="$MSKX_ROOT/tests/serve/http_client.py"
tool="$MSKX_ROOT/tests/tools/infer_model.py"
arch="densenet:growth=8,blocks=2-2,init=8,bn_size=2"
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done' EXIT

if ! "$MSKX_BIN" serve --help >/dev/null 2>&1; then
  fail serve_registered "the mskx binary has no 'serve' command"
  exit 0
fi

# The embedded page must be what tools/embed_viewer.sh makes of viewer.html.
check viewer_embed_in_sync sh -c '"$1/tools/embed_viewer.sh" "$2" && cmp "$2" "$1/src/serve/viewer_html.c"' _ \
  "$MSKX_ROOT" "$T/viewer_html.c"

fx="$T/fx"
mkdir -p "$fx/study"
$py "$tool" make "$fx/tiny.safetensors" "$arch" --seed 5 --size 64 --threshold 0.5 &&
$py "$tool" png "$fx/study/image1.png:64:64:1" "$fx/study/image2.png:80:60:2" "$fx/study/image3.png:72:72:3" \
  "$fx/big.png:400:300:4" "$fx/photo.png:90:70:5" &&
$py -c 'import sys; from PIL import Image; Image.open(sys.argv[1]).save(sys.argv[2], quality=90)' "$fx/photo.png" "$fx/photo.jpg" &&
echo "this is not an image" > "$fx/bad.png" &&
"$MSKX_BIN" predict --model "$fx/tiny.safetensors" --json "$fx/study" > "$fx/ref.json" &&
"$MSKX_BIN" predict --model "$fx/tiny.safetensors" --json "$fx/photo.jpg" > "$fx/ref_jpeg.json" ||
  { fail fixtures "could not write the model, images or reference predictions"; exit 0; }

check_fails cli_needs_model "--model is required" "$MSKX_BIN" serve
check_fails cli_missing_model_file "nope.safetensors" "$MSKX_BIN" serve --model "$T/nope.safetensors" --port 0
check_fails cli_bad_port "--port" "$MSKX_BIN" serve --model "$fx/tiny.safetensors" --port 70000
check_fails cli_bad_limit "--max-images" "$MSKX_BIN" serve --model "$fx/tiny.safetensors" --max-images 0
check_fails cli_unknown_option "mskx serve --help" "$MSKX_BIN" serve --model "$fx/tiny.safetensors" --bogus
check_fails cli_bad_header_timeout "--header-timeout" "$MSKX_BIN" serve --model "$fx/tiny.safetensors" --header-timeout 0
check_fails cli_bad_min_rate "--min-rate" "$MSKX_BIN" serve --model "$fx/tiny.safetensors" --min-rate -1
check_fails cli_buffered_below_body "max_buffered .* is less than max_body" "$MSKX_BIN" serve \
  --model "$fx/tiny.safetensors" --port 0 --max-body 2000 --max-buffered 1000

source "$MSKX_ROOT/tests/serve/serve_lib.sh"

# stopped_ok NAME PID SECONDS: the process exits with 0 within SECONDS.
stopped_ok() {
  local name=$1 p=$2 s=$3 i
  for i in $(seq $((s * 10))); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then fail "$name" "still running after $s s"; kill -9 "$p"; wait "$p" 2>/dev/null; return; fi
  wait "$p"
  local rc=$?
  [ $rc = 0 ] && pass "$name" || fail "$name" "exit status $rc"
}

# Server A: small limits so that every limit can be reached cheaply.
if start_server A --max-body 2000000 --max-images 4 --max-pixels 100000 --max-concurrent 2 --timeout 2 --threads 1 \
     --max-per-ip 64; then
  A=$pid
  run_py suite suite "$url" "$A" "$fx"
  # Control bytes from the client (ESC, backspace; %-encoded and raw) reach
  # the log escaped, so that a request cannot drive the operator's terminal.
  port=${url##*:}
  printf 'GET /esc%%1b[2Jx%%08y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
    timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; cat >&3; cat <&3 >/dev/null' _ "$port"
  printf 'GET /raw\033]0;title\007\010z HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
    timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; cat >&3; cat <&3 >/dev/null' _ "$port"
  sleep 0.3
  check access_log_escapes_control_bytes grep -Fq 'GET /esc\x1b[2Jx\x08y 404' "$T/A.log"
  check access_log_has_no_control_bytes sh -c '! LC_ALL=C grep -q "[[:cntrl:]]" "$1"' _ "$T/A.log"
  port=${url##*:}
  check_fails port_in_use "cannot listen" "$MSKX_BIN" serve --model "$fx/tiny.safetensors" --port "$port"
  check access_log_lines grep -Eq '^[0-9TZ:-]+ POST /v1/predict 200 [0-9.]+ ms 3 images$' "$T/A.log"
  check access_log_escapes_raw_bytes grep -Fq 'GET /raw\x1b]0;title\x07\x08z' "$T/A.log"
  check access_log_errors grep -Eq 'POST /v1/predict 413 [0-9.]+ ms - request body exceeds' "$T/A.log"
  check access_log_timeouts grep -q 'connection timed out' "$T/A.log"
  kill -INT "$A"
  stopped_ok sigint_exits_0 "$A" 10
fi

# Server B: the viewer in chromium, then SIGTERM during an upload.
if start_server B --timeout 10; then
  B=$pid
  bdir="$MSKX_ROOT/tests/serve/browser"
  study=$("$MSKX_BIN" synth --out "$T/syn" -n 14 --min-size 200 --max-size 320 -j 1 >/dev/null 2>&1 &&
          find "$T/syn" -name 'image3.png' -path '*valid*' | head -1 | xargs -r dirname)
  if [ -z "$study" ]; then
    fail browser_fixtures "mskx synth gave no study with 3 images"
  elif browser_ready browser_available; then
    extra=()
    [ -n "${MSKX_VIEWER_SCREENSHOT:-}" ] && extra=(--also "$MSKX_VIEWER_SCREENSHOT")
    (cd "$bdir" && timeout 120 node viewer_test.mjs "$url" "$MSKX_TMP/viewer.png" "$fx/bad.png" \
       "$study/image1.png" "$study/image2.png" "$study/image3.png" "${extra[@]}") > "$T/browser.out" 2>&1
    rc=$?
    cat "$T/browser.out"
    [ $rc != 0 ] && ! grep -q '^FAIL ' "$T/browser.out" && fail browser_run "exit $rc: $(tail -c 400 "$T/browser.out")"
  fi
  run_py sigterm sigterm "$url" "$B" "$fx"
  stopped_ok sigterm_exits_0 "$B" 10
  check sigterm_logged_and_stopped grep -q 'SIGTERM received' "$T/B.log"
  check sigterm_request_logged grep -Eq 'POST /v1/predict 200 .* 3 images' "$T/B.log"
fi

# Server C: a stalled upload is cut at the --grace deadline; still exit 0.
if start_server C --timeout 60 --grace 1; then
  C=$pid
  port=${url##*:}
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100\r\n\r\nab' >&3
  sleep 0.3
  t0=$(date +%s.%N)
  kill -TERM "$C"
  stopped_ok grace_deadline_exits_0 "$C" 10
  exec 3>&-
  check grace_deadline_bounded $py -c 'import sys, time; d = time.time() - float(sys.argv[1]); assert 0.8 < d < 4, d' "$t0"
  check grace_deadline_logged grep -q '1 request(s) were still running at the deadline' "$T/C.log"
fi

# Server D: a per-part bundle in a folder whose path has spaces, its member
# in another; answers name files, never the server's folders: a study of a
# part the bundle has no model for gets a 400 naming the bundle file, and
# /v1/model shows file names only.
srv="$T/srv dir/my models"
mkdir -p "$srv/sub dir"
cp "$fx/tiny.safetensors" "$srv/sub dir/tiny.safetensors"
printf '{"format": "mskx-bundle-1", "models": {"XR_WRIST": "sub dir/tiny.safetensors"}}' > "$srv/bundle.json"
printf '{"format": "mskx-ensemble-1", "method": "mean", "members": [{"path": "sub dir/tiny.safetensors"}, {"path": "bundle.json"}]}' \
  > "$srv/ensemble.json"
# no_server_paths NAME FILE: FILE shows none of the server's folder names.
no_server_paths() {
  if grep -Eq 'srv dir|my models|sub dir|mskx-tests|/tmp/' "$2"; then fail "$1" "$(head -c 400 "$2")"; else pass "$1"; fi
}
if start_server D --model "$srv/bundle.json"; then
  D=$pid
  code=$(curl -s -o "$T/d.json" -w '%{http_code}' -F "images=@$fx/study/image1.png" "$url/v1/predict?part=elbow")
  [ "$code" = 400 ] && grep -q '"bundle.json: no model for part XR_ELBOW' "$T/d.json" && pass bundle_part_error ||
    fail bundle_part_error "HTTP $code: $(head -c 300 "$T/d.json")"
  no_server_paths error_hides_server_paths "$T/d.json"
  code=$(curl -s -o "$T/d1.json" -w '%{http_code}' -F "images=@$fx/bad.png" "$url/v1/predict?part=wrist")
  [ "$code" = 400 ] && grep -q 'bad.png' "$T/d1.json" && pass bundle_bad_image_400 ||
    fail bundle_bad_image_400 "HTTP $code: $(head -c 300 "$T/d1.json")"
  no_server_paths member_error_hides_server_paths "$T/d1.json"
  code=$(curl -s -o "$T/d2.json" -w '%{http_code}' -F "images=@$fx/study/image1.png" "$url/v1/predict?part=wrist")
  [ "$code" = 200 ] && pass bundle_part_routes || fail bundle_part_routes "HTTP $code: $(head -c 300 "$T/d2.json")"
  no_server_paths bundle_predict_hides_server_paths "$T/d2.json"
  curl -s -o "$T/d3.json" "$url/v1/model"
  check bundle_model_names_files $py -c 'import json, sys
m = json.load(open(sys.argv[1]))
assert m["file"] == "bundle.json" and m["metadata"]["file"] == "bundle.json", m
assert m["metadata"]["models"]["XR_WRIST"]["file"] == "tiny.safetensors", m' "$T/d3.json"
  no_server_paths bundle_model_hides_server_paths "$T/d3.json"
  kill -TERM "$D"
  stopped_ok bundle_server_stops "$D" 10
fi

# Server P: --precision auto names its choice in /v1/model and /v1/health/ready.
if start_server P --precision auto --threads 1; then
  P=$pid
  curl -s -o "$T/p1.json" "$url/v1/model"
  curl -s -o "$T/p2.json" "$url/v1/health/ready"
  check precision_auto_reported $py -c 'import json, sys
m, h = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert m["precision"] in ("fp32", "bf16") and h["precision"] == m["precision"], (m, h)' "$T/p1.json" "$T/p2.json"
  kill -TERM "$P"
  stopped_ok precision_auto_server_stops "$P" 10
fi

# Server F: an ensemble of a model and that bundle, same folders.
if start_server F --model "$srv/ensemble.json"; then
  F=$pid
  curl -s -o "$T/f.json" "$url/v1/model"
  check ensemble_model_names_files $py -c 'import json, sys
m = json.load(open(sys.argv[1]))["metadata"]
assert [x["file"] for x in m["members"]] == ["tiny.safetensors", "bundle.json"], m
assert m["members"][1]["models"]["XR_WRIST"]["file"] == "tiny.safetensors", m' "$T/f.json"
  no_server_paths ensemble_model_hides_server_paths "$T/f.json"
  code=$(curl -s -o "$T/f1.json" -w '%{http_code}' -F "images=@$fx/study/image1.png" "$url/v1/predict?part=elbow")
  [ "$code" = 400 ] && grep -q 'bundle.json: no model for part XR_ELBOW' "$T/f1.json" && pass ensemble_member_error ||
    fail ensemble_member_error "HTTP $code: $(head -c 300 "$T/f1.json")"
  no_server_paths ensemble_error_hides_server_paths "$T/f1.json"
  kill -TERM "$F"
  stopped_ok ensemble_server_stops "$F" 10
fi

# Server G: request bodies held in memory are bounded over all requests.
if start_server G --max-body 200000 --max-buffered 300000; then
  G=$pid
  run_py body_budget body_budget "$url" "$G" "$fx"
  kill -TERM "$G"
  stopped_ok body_budget_server_stops "$G" 10
fi

# Server E: slow clients (slowloris headers, slow bodies, many connections
# from one address) and ambiguous body framing.
if start_server E --max-per-ip 8 --header-timeout 2 --min-rate 1000 --timeout 30 --max-connections 64; then
  E=$pid
  run_py slowloris slowloris "$url" "$E" "$fx"
  run_py framing framing "$url" "$E" "$fx"
  check slow_headers_logged grep -q 'whose request headers were not complete within 2 s' "$T/E.log"
  check slow_body_logged grep -Eq 'POST /v1/predict - [0-9.]+ ms - request body slower than the minimum rate' "$T/E.log"
  kill -TERM "$E"
  stopped_ok slowloris_server_stops "$E" 10
  # Twelve refused connections within a second: one line and a count, not twelve lines.
  check refused_connections_logged_once sh -c '[ "$(grep -c "reached connection limit" "$1")" -le 3 ] &&
    grep -Eq "^mskx serve: \([0-9]+ more: Server reached connection limit" "$1"' _ "$T/E.log"
fi
