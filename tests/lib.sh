# Helpers for shell tests: source it, then call pass/fail/check. Each check
# prints one PASS or FAIL line that tests/run counts.
# $MSKX_BIN is the binary under test, $MSKX_TMP a scratch folder.
set -u
: "${MSKX_BIN:?run through tests/run}"
T=$(mktemp -d "${MSKX_TMP:-/tmp}/t.XXXXXX")
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: ${2:-}"; }
# check NAME CMD...: passes when CMD exits 0.
check() { local n=$1; shift; if "$@" >"$T/out" 2>"$T/err"; then pass "$n"; else fail "$n" "$(head -c 400 "$T/err")"; fi; }
# check_fails NAME PATTERN CMD...: passes when CMD exits non-zero and stderr matches PATTERN (grep -E).
check_fails() {
  local n=$1 pat=$2; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ "$rc" = 0 ]; then fail "$n" "expected failure, got exit 0"; return; fi
  if [ "$rc" -ge 128 ]; then fail "$n" "crashed with signal $((rc - 128)): $(head -c 300 "$T/err")"; return; fi
  if grep -Eq -- "$pat" "$T/err"; then pass "$n"; else fail "$n" "stderr did not match /$pat/: $(head -c 300 "$T/err")"; fi
}
# browser_ready NAME: the viewer tests' stack (chromium, node, playwright-core
# from tests/serve/browser/package-lock.json, installed here on first use);
# on failure one FAIL line named NAME says what is missing, and it returns 1.
browser_ready() {
  local bdir="$MSKX_ROOT/tests/serve/browser"
  if [ ! -x /usr/bin/chromium ] || ! command -v node >/dev/null; then
    fail "$1" "needs /usr/bin/chromium and node (scripts/setup --test installs them)"; return 1
  fi
  if [ ! -d "$bdir/node_modules/playwright-core" ] &&
     ! (cd "$bdir" && timeout 300 npm ci --no-audit --no-fund > "$T/npm.log" 2>&1); then
    fail "$1" "npm ci in tests/serve/browser failed: $(tail -c 400 "$T/npm.log")"; return 1
  fi
  return 0
}
