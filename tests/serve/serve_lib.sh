# Shared by the service's shell tests (source after tests/lib.sh). Needs $py,
# $client (for run_py), an array pids that the test's EXIT trap kills, and
# the model to serve: $serve_model, or else $fx/tiny.safetensors.

# start_server NAME ARGS...: `mskx serve` of the model on a free port with
# ARGS, answering HTTP; sets pid and url, prints NAME_starts.
start_server() {
  local name=$1; shift
  # A small ASan quarantine (ignored by other builds) keeps RSS checks meaningful.
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8" \
    "$MSKX_BIN" serve --model "${serve_model:-$fx/tiny.safetensors}" --port 0 "$@" 2> "$T/$name.log" &
  pid=$!
  pids+=("$pid")
  url=""
  for _ in $(seq 300); do
    url=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$T/$name.log" | sed 's/listening on //')
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$url" ] && $py "$MSKX_ROOT/tests/serve/http_client.py" wait "$url" 20 && pass "${name}_starts" && return 0
  fail "${name}_starts" "$(head -c 300 "$T/$name.log")"
  return 1
}

# run_py NAME ARGS...: the client's PASS/FAIL lines, plus a FAIL if it crashed.
run_py() {
  local name=$1; shift
  timeout 300 $py "$client" "$@" > "$T/$name.out" 2>&1
  local rc=$?
  cat "$T/$name.out"
  [ $rc != 0 ] && ! grep -q '^FAIL ' "$T/$name.out" && fail "$name" "client exited with $rc: $(tail -c 400 "$T/$name.out")"
  return 0
}
