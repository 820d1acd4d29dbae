# libmskx.so as installed by `cmake --install`: versioned SONAME, only the
# mskx_* API exported, mskx.pc usable by pkg-config, and the example program
# built against the installed header and shared library runs.
source "$MSKX_ROOT/tests/lib.sh"
build="${MSKX_BUILD:-$MSKX_ROOT/build}"
py=/usr/bin/python3
prefix="$T/prefix"
check install_runs cmake --install "$build" --prefix "$prefix"
libdir=$(dirname "$(find "$prefix" -name 'libmskx.so' | head -1)")
ver=$(sed -n 's/^project(mskx VERSION \([0-9.]*\).*/\1/p' "$MSKX_ROOT/CMakeLists.txt")
major=${ver%%.*}; minor=${ver#*.}; minor=${minor%%.*}
[ "$major" = 0 ] && soname="libmskx.so.$major.$minor" || soname="libmskx.so.$major"
check installed_files test -f "$libdir/libmskx.so.$ver" -a -L "$libdir/$soname" -a -f "$libdir/libmskx.a" \
  -a -f "$prefix/include/mskx.h" -a -f "$libdir/pkgconfig/mskx.pc"
readelf -d "$libdir/libmskx.so.$ver" > "$T/dyn" 2>&1
grep -q "Library soname: \[$soname\]" "$T/dyn" && pass soname_versioned || fail soname_versioned "$(grep -i soname "$T/dyn")"

# Exported: exactly the functions include/mskx.h declares MSKX_API.
nm -D --defined-only "$libdir/libmskx.so.$ver" | awk '{print $3}' | sort > "$T/exported"
# Besides: the three GDCM libjpeg error-manager replacements (src/io/dicom_gdcm.cpp),
# which must be dynamic symbols to interpose on GDCM's.
{ sed -n 's/^MSKX_API [^(]*[ *]\(mskx_[a-z_0-9]*\)(.*/\1/p' "$MSKX_ROOT/include/mskx.h"
  printf 'gdcmjpeg%s_jpeg_std_error\n' 8 12 16; } | sort > "$T/declared"
if [ -s "$T/declared" ] && cmp -s "$T/exported" "$T/declared"; then pass only_api_exported
else fail only_api_exported "$(diff "$T/declared" "$T/exported" | head -10 | tr '\n' ' ')"; fi

export PKG_CONFIG_PATH="$libdir/pkgconfig"
san=""
grep -q '^MSKX_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null && san="-fsanitize=address,undefined"
check pkg_config_version test "$(pkg-config --modversion mskx)" = "$ver"
check example_builds_with_pkg_config cc -std=c11 -Wall -Wextra -Werror "$MSKX_ROOT/examples/predict_study.c" \
  $(pkg-config --cflags --libs mskx) $san -Wl,-rpath,"$libdir" -o "$T/predict_study"
ldd "$T/predict_study" | grep -q "$soname => $libdir" && pass example_uses_shared_library ||
  fail example_uses_shared_library "$(ldd "$T/predict_study" | grep mskx)"
$py "$MSKX_ROOT/tests/tools/infer_model.py" make "$T/a.safetensors" "densenet:growth=4,blocks=1-2,init=8,bn_size=2" --seed 2 --size 64 &&
  $py "$MSKX_ROOT/tests/tools/infer_model.py" png "$T/x.png:64:64:3" || fail fixtures "torch"
check example_runs "$T/predict_study" "$T/a.safetensors" "$T/x.png"
cp "$T/out" "$T/example.out"
# Same probability as the CLI (printed to 6 decimals by the example).
"$MSKX_BIN" predict --model "$T/a.safetensors" "$T/x.png" --json > "$T/cli.json"
check example_agrees_with_cli $py -c '
import json, re, sys
p = json.load(open(sys.argv[2]))[0]["probability"]
m = re.search(r"study: probability ([0-9.]+)", open(sys.argv[1]).read())
assert m and abs(float(m.group(1)) - p) < 1e-6, (m and m.group(1), p)' "$T/example.out" "$T/cli.json"
