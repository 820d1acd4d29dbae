# The Python package python/mskx over libmskx.so, with Debian's Python
# (tests/python/test_bindings.py: results equal `mskx predict --json` bit for
# bit, arrays of every supported kind, errors as exceptions, 4 threads sharing
# a model, RSS over 1000 predictions), and how the package finds the library.
source "$MSKX_ROOT/tests/lib.sh"
py=/usr/bin/python3
tool="$MSKX_ROOT/tests/tools/infer_model.py"
build="${MSKX_BUILD:-$MSKX_ROOT/build}"
lib="$build/libmskx.so"
if [ ! -e "$lib" ]; then fail libmskx_built "no $lib"; exit 0; fi
if grep -q '^MSKX_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  # Python is not built with ASan: the sanitized library cannot be dlopen'ed.
  pass python_skipped_under_asan; exit 0
fi

W="$T/MURA/valid/XR_WRIST/patient1/study1_positive"
H="$T/MURA/valid/XR_HAND/patient2/study1_negative"
mkdir -p "$W" "$H"
$py "$tool" make "$T/a.safetensors" "densenet:growth=8,blocks=2-2,init=8,bn_size=2" --seed 3 --size 64 --threshold 0.5 &&
$py "$tool" make "$T/b.safetensors" "densenet:growth=4,blocks=1-2,init=8,bn_size=2" --seed 4 --size 64 --threshold 0.3 &&
$py "$tool" png "$W/image1.png:64:64:1" "$W/image2.png:64:64:2" "$W/image10.png:64:64:10" "$H/image1.png:64:64:21" \
  "$H/image2.png:64:64:22" "$T/single.png:64:64:31" &&
head -c 200 "$H/image2.png" > "$T/corrupt.png" && echo notes > "$T/notes.txt" &&
printf '{"format": "mskx-bundle-1", "models": {"XR_WRIST": "a.safetensors", "XR_HAND": "b.safetensors"}}' > "$T/bundle.json" &&
printf '{"format": "mskx-ensemble-1", "method": "mean", "members": [{"path": "a.safetensors"}, {"path": "b.safetensors"}]}' > "$T/ens.json" ||
  { fail fixtures "could not create models or images with $py"; exit 0; }

MSKX_FIX="$T" MSKX_LIBRARY="$lib" PYTHONPATH="$MSKX_ROOT/python" $py "$MSKX_ROOT/tests/python/test_bindings.py" 2>"$T/unittest.err"
tail -n 30 "$T/unittest.err" | grep -E "Error|assert|File" | head -20

# How the package finds the library: next to the package, then the system loader.
cp -r "$MSKX_ROOT/python/mskx" "$T/pkg_next" 2>/dev/null; mkdir -p "$T/next" && mv "$T/pkg_next" "$T/next/mskx"
cp "$build"/libmskx.so.*.*.* "$T/next/mskx/"
probe='import mskx, os; print(mskx._lib._name)'
check finds_library_next_to_package env -u MSKX_LIBRARY PYTHONPATH="$T/next" $py -c "$probe"
grep -q "$T/next/mskx/libmskx.so" "$T/out" || fail next_to_package_used "$(cat "$T/out")"
check finds_library_by_system_loader env -u MSKX_LIBRARY LD_LIBRARY_PATH="$build" PYTHONPATH="$MSKX_ROOT/python" $py -c "$probe"
grep -qx "libmskx.so.0.1" "$T/out" && pass system_loader_uses_soname || fail system_loader_uses_soname "$(cat "$T/out")"
check_fails missing_library_is_import_error "cannot load libmskx.*MSKX_LIBRARY" \
  env MSKX_LIBRARY="$T/nope.so" PYTHONPATH="$MSKX_ROOT/python" $py -c 'import mskx'

# The example program, with numpy and without it (python -S: no site packages).
ex=(env MSKX_LIBRARY="$lib" PYTHONPATH="$MSKX_ROOT/python" $py)
check example_runs "${ex[@]}" "$MSKX_ROOT/examples/predict_study.py" "$T/a.safetensors" "$W/image1.png" "$W/image2.png"
cp "$T/out" "$T/ex_numpy.out"
check example_runs_without_numpy env MSKX_LIBRARY="$lib" $py -S -c '
import sys; sys.path.insert(0, sys.argv[1]); sys.argv = sys.argv[2:]
try:
    import numpy; raise SystemExit("numpy is importable under -S")
except ImportError: pass
exec(open(sys.argv[0]).read())' "$MSKX_ROOT/python" "$MSKX_ROOT/examples/predict_study.py" "$T/a.safetensors" "$W/image1.png" "$W/image2.png"
cp "$T/out" "$T/ex_plain.out"
check example_same_without_numpy cmp "$T/ex_plain.out" "$T/ex_numpy.out"

# The ctypes structures match include/mskx.h field by field (offsets and sizes
# from the C compiler), so a field added to the header cannot silently shift
# what Python reads.
abi_c="$T/abi.c"
$py - "$MSKX_ROOT/python" > "$abi_c" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import ctypes
src = open(sys.argv[1] + "/mskx/__init__.py").read()
# Only the structure definitions are needed: no library is loaded here.
ns = {"C": ctypes}
start = src.index("class _Err(")
end = src.index("def _candidates(")
exec(src[start:end], ns)
pairs = {"_Err": "mskx_err", "_LoadOptions": "mskx_load_options", "_Info": "struct mskx_model_info",
         "_PredictOptions": "mskx_predict_options", "_Encoded": "mskx_encoded_image", "_Pixels": "mskx_pixel_image",
         "_ImageResult": "mskx_image_result", "_Result": "mskx_result"}
print('#include <stddef.h>\n#include <stdio.h>\n#include "mskx.h"\nint main(void) {')
for py_name, c_name in pairs.items():
    cls = ns[py_name]
    print('  printf("%s size %%zu %%zu\\n", sizeof(%s), (size_t)%d);' % (py_name, c_name, ctypes.sizeof(cls)))
    for f in cls._fields_:
        print('  printf("%s.%s %%zu %%zu\\n", offsetof(%s, %s), (size_t)%d);' % (py_name, f[0], c_name, f[0], getattr(cls, f[0]).offset))
print("  return 0;\n}")
PY
if cc -I"$MSKX_ROOT/include" "$abi_c" -o "$T/abi" 2>"$T/abi.err" && "$T/abi" > "$T/abi.out"; then
  bad=$(awk '$(NF-1) != $NF' "$T/abi.out")
  [ -z "$bad" ] && pass ctypes_layout_matches_header || fail ctypes_layout_matches_header "$bad"
else
  fail ctypes_layout_matches_header "$(head -c 400 "$T/abi.err")"
fi
