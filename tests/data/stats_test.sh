#!/usr/bin/env bash
# mskx stats on a small MURA tree written here: table and --json counts
# against the tree's own listing, image sizes, the CSV-less tree, warnings,
# --check with a corrupt image, and bad --data values.
source "$MSKX_ROOT/tests/lib.sh"
PY=/usr/bin/python3
D=$T/MURA-v1.1

# Three PNGs (8x6, 12x10, 20x16 grey), written by Python's zlib once.
PNG[0]=iVBORw0KGgoAAAANSUhEUgAAAAgAAAAGCAAAAADbboAnAAAAPklEQVR42mNgYOcTlVHWMmTgFZFW0jQwt2OQUtTQN7N18WZQ1zO1cfYKjGAwsXbyDAiPS2Vw9PAPi03JLgIA2eYKsdx9BekAAAAASUVORK5CYII=
PNG[1]=iVBORw0KGgoAAAANSUhEUgAAAAwAAAAKCAAAAAClR+AmAAAAjUlEQVR42gGCAH3/AAAHDhUcIyoxOD9GTQANFBsiKTA3PkVMU1oAGiEoLzY9REtSWWBnACcuNTxDSlFYX2ZtdAA0O0JJUFdeZWxzeoEAQUhPVl1ka3J5gIeOAE5VXGNqcXh/ho2UmwBbYmlwd36FjJOaoagAaG92fYSLkpmgp661AHV8g4qRmJ+mrbS7wtfKLXndRpOOAAAAAElFTkSuQmCC
PNG[2]=iVBORw0KGgoAAAANSUhEUgAAABQAAAAQCAAAAAAzcwDHAAABO0lEQVR42mNgYOcTlVHWMrSwd/MNiU7KLCiva2XgFZFW0jQwt3P1CY5KzMgvq23pnsQgpaihb2br4h0UmZCeV1rT3DVxxnwGdT1TG2evwIj4tNyS6qbOCdPnLV3DYGLt5BkQHpeaU1zV2NE/be6S1Zt2Mjh6+IfFpmQXVTa0902ds3jVxh37jzH4hcYkZxVW1Lf1Tpm9aOWG7fuOnrnMAHVFz+RZC1es37b3yOlLNx8wQF0xc8HydVv3HD518cb9Z28ZoK5YtnbL7kMnL1y/9/TN518MUFds3nXwxPlrd5+8/vSTgZ0B6ooDx89dvfP41ccf/9l4RRigrjh75fajlx++/2PlEZZSZIC64tbDF++//WXhFpJUUNdjgLri+buvf5i5BCXk1XRNrBmgrvjym4lTQFxOVcfYytEDAImdqAFqxDBpAAAAAElFTkSuQmCC
W=(8 12 20); H=(6 10 16)

# split part patient study label images
SPEC="train XR_ELBOW 1 1 1 2
train XR_ELBOW 2 1 0 1
train XR_HAND 3 1 0 3
train XR_HAND 3 2 1 1
train XR_WRIST 4 1 1 2
train XR_WRIST 8 1 0 4
valid XR_ELBOW 5 1 0 1
valid XR_WRIST 6 1 1 2
valid XR_WRIST 7 1 0 1"

mkdir -p "$D"
: > "$T/sizes"
k=0
while read -r split part patient study label n; do
  suffix=negative; [ "$label" = 1 ] && suffix=positive
  rel=$(printf 'MURA-v1.1/%s/%s/patient%05d/study%d_%s/' "$split" "$part" "$patient" "$study" "$suffix")
  mkdir -p "$T/$rel"
  echo "$rel,$label" >> "$D/${split}_labeled_studies.csv"
  for j in $(seq 1 "$n"); do
    echo "${PNG[$((k % 3))]}" | base64 -d > "$T/${rel}image$j.png"
    echo "${W[$((k % 3))]} ${H[$((k % 3))]}" >> "$T/sizes"
    echo "${rel}image$j.png" >> "$D/${split}_image_paths.csv"
    k=$((k + 1))
  done
done <<< "$SPEC"

# Expected counts straight from SPEC, compared with the JSON output.
compare_json() {  # file with mskx's JSON
  SPEC="$SPEC" SIZES="$T/sizes" $PY -c '
import json, os, sys, statistics
got = json.load(open(sys.argv[1]))
want = {}
for line in os.environ["SPEC"].splitlines():
    split, part, _, _, label, n = line.split()
    for key in (part, "total"):
        c = want.setdefault(key, {s: dict(studies_normal=0, studies_abnormal=0, images_normal=0, images_abnormal=0)
                                  for s in ("train", "valid")})[split]
        cls = "abnormal" if label == "1" else "normal"
        c["studies_" + cls] += 1
        c["images_" + cls] += int(n)
total = want.pop("total")
assert got["parts"] == want, (got["parts"], want)
assert got["total"] == total, (got["total"], total)
if "image_size" in got:
    ws, hs = zip(*[map(int, l.split()) for l in open(os.environ["SIZES"])])
    for k, v in (("width", ws), ("height", hs)):
        exp = dict(min=min(v), median=statistics.median(v), max=max(v))
        assert got["image_size"][k] == exp, (k, got["image_size"][k], exp)
    assert got["image_size"]["images"] == len(ws)
' "$1"
}

"$MSKX_BIN" stats --data "$D" --json --threads 2 > "$T/a.json" 2> "$T/a.err"
check "json counts and sizes" compare_json "$T/a.json"

# The table: each part's row holds its 8 counts (studies/images, normal/abnormal, train then valid).
"$MSKX_BIN" stats --data "$D" > "$T/table.txt" 2> "$T/table.err"
check "table rows match json" $PY -c '
import json, sys
js = json.load(open(sys.argv[1]))
rows = {l.split()[0]: [int(x) for x in l.split()[1:]] for l in open(sys.argv[2]) if l.startswith(("XR_", "total"))}
keys = ("studies_normal", "studies_abnormal", "images_normal", "images_abnormal")
for name, splits in list(js["parts"].items()) + [("total", js["total"])]:
    want = [splits[s][k] for s in ("train", "valid") for k in keys]
    assert rows.get(name) == want, (name, rows.get(name), want)
assert len(rows) == len(js["parts"]) + 1
' "$T/a.json" "$T/table.txt"
check "table reports image sizes" grep -q "image size ($k images, from headers): width min 8 median 12 max 20; height min 6 median 10 max 16" "$T/table.txt"

# The same tree without CSVs gives the same counts.
mkdir -p "$T/bare" && cp -r "$D" "$T/bare/" && rm "$T/bare/MURA-v1.1/"*.csv
"$MSKX_BIN" stats --data "$T/bare" --json --no-sizes > "$T/b.json" 2> "$T/b.err"
check "tree without CSVs" compare_json "$T/b.json"

# A label that disagrees with its folder name: a warning on stderr and in the JSON.
cp -r "$D" "$T/warn"
sed -i '2s/,0$/,1/' "$T/warn/train_labeled_studies.csv"
"$MSKX_BIN" stats --data "$T/warn" --json --no-sizes > "$T/w.json" 2> "$T/w.err"
check "warning on stderr" grep -q "warning: .*train_labeled_studies.csv:2: label 1 disagrees with the folder name" "$T/w.err"
check "warning in json" $PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["n_warnings"] == 1 and "train_labeled_studies.csv:2:" in j["warnings"][0], j["warnings"]
assert j["total"]["train"]["studies_abnormal"] == 4
' "$T/w.json"

# --check decodes everything: clean tree passes, a corrupt image fails and is named.
check "check passes on a clean tree" "$MSKX_BIN" stats --data "$D" --check --threads 2
bad=$(sed -n 4p "$D/train_image_paths.csv")
head -c 60 "$T/$bad" > "$T/trunc" && cp "$T/trunc" "$T/$bad"
check_fails "check names a corrupt image" "unreadable: .*$bad" "$MSKX_BIN" stats --data "$D" --check --threads 2
check_fails "check counts unreadable images" "1 of $k images are unreadable" "$MSKX_BIN" stats --data "$D" --check
"$MSKX_BIN" stats --data "$D" --check --json > "$T/c.json" 2>/dev/null
check "check lists it in json" $PY -c '
import json, sys
u = json.load(open(sys.argv[1]))["unreadable"]
assert len(u) == 1 and u[0]["path"].endswith(sys.argv[2]) and u[0]["error"], u
' "$T/c.json" "$bad"

# Bad inputs: clear messages naming the problem.
check_fails "missing folder" "/nonexistent/x: no such file or folder" "$MSKX_BIN" stats --data /nonexistent/x
mkdir -p "$T/empty"
check_fails "not a dataset" "not a MURA dataset folder" "$MSKX_BIN" stats --data "$T/empty"
printf 'MURA-v1.1/valid/XR_ELBOW/patient00005/study1_negative/,maybe\n' > "$D/valid_labeled_studies.csv"
check_fails "bad label names file and line" "valid_labeled_studies.csv:1: label 'maybe' is not 0 or 1" \
  "$MSKX_BIN" stats --data "$D"
check_fails "data is required" "--data DIR is required" "$MSKX_BIN" stats
check "help" "$MSKX_BIN" stats --help
"$MSKX_BIN" stats --bogus > /dev/null 2>&1
[ $? = 2 ] && pass "unknown option exits 2" || fail "unknown option exits 2"
rm -rf "$T"
