#!/usr/bin/env bash
# mskx synth from the command line: help, a tiny dataset in MURA's layout,
# clear errors for bad options, refusing a non-empty output without --force,
# and identical bytes when the same run is repeated.
source "$MSKX_ROOT/tests/lib.sh"

check help "$MSKX_BIN" synth --help
if grep -q -- "--studies" "$T/out" && grep -q "no clinical meaning" "$T/out"; then pass help_text
else fail help_text "usage text lacks --studies or the synthetic-data statement"; fi

tiny=(--studies 14 --min-size 32 --max-size 48 --seed 3)
check tiny_run "$MSKX_BIN" synth --out "$T/d" "${tiny[@]}"
cp "$T/out" "$T/summary"
if grep -q "synthetic phantoms, not clinical data" "$T/summary"; then pass summary_says_synthetic
else fail summary_says_synthetic "$(head -c 300 "$T/summary")"; fi

m="$T/d/MURA-v1.1"
img_re='^MURA-v1\.1/(train|valid)/XR_(ELBOW|FINGER|FOREARM|HAND|HUMERUS|SHOULDER|WRIST)/patient[0-9]{5}/study[0-9]+_(positive|negative)/image[1-4]\.png$'
std_re='^MURA-v1\.1/(train|valid)/XR_(ELBOW|FINGER|FOREARM|HAND|HUMERUS|SHOULDER|WRIST)/patient[0-9]{5}/study[0-9]+_(positive/,1|negative/,0)$'
ok=1
for s in train valid; do
  for f in "$m/${s}_image_paths.csv" "$m/${s}_labeled_studies.csv"; do [ -s "$f" ] || ok=0; done
  bad=$(grep -Evc "$img_re" "$m/${s}_image_paths.csv")
  [ "$bad" = 0 ] || ok=0
  bad=$(grep -Evc "$std_re" "$m/${s}_labeled_studies.csv")
  [ "$bad" = 0 ] || ok=0
  [ "$(grep -c "^MURA-v1.1/$s/" "$m/${s}_labeled_studies.csv")" = 7 ] || ok=0
  while read -r p; do [ -f "$T/d/$p" ] || ok=0; done < "$m/${s}_image_paths.csv"
done
if [ "$ok" = 1 ]; then pass csv_formats_and_files; else fail csv_formats_and_files "see $m"; fi

# The summary's image counts match the CSVs.
n_train=$(wc -l < "$m/train_image_paths.csv"); n_valid=$(wc -l < "$m/valid_image_paths.csv")
if grep -Eq "train 7 studies \([0-9]+ abnormal\) / $n_train images" "$T/summary" &&
   grep -Eq "valid 7 studies \([0-9]+ abnormal\) / $n_valid images" "$T/summary"; then pass summary_counts
else fail summary_counts "csv $n_train/$n_valid vs: $(head -c 300 "$T/summary")"; fi

check_fails studies_zero "--studies: 0 is out of range" "$MSKX_BIN" synth --out "$T/x" --studies 0
check_fails studies_not_number "--studies: '12abc' is not an integer" "$MSKX_BIN" synth --out "$T/x" --studies 12abc
check_fails sizes_inverted "--min-size 600 is larger than --max-size 300" \
  "$MSKX_BIN" synth --out "$T/x" --min-size 600 --max-size 300
check_fails size_too_small "--min-size: 8 is out of range" "$MSKX_BIN" synth --out "$T/x" --min-size 8
check_fails fraction_range "--valid-fraction: 1.5 is out of range" "$MSKX_BIN" synth --out "$T/x" --valid-fraction 1.5
check_fails unknown_option "see 'mskx synth --help'" "$MSKX_BIN" synth --out "$T/x" --bogus
check_fails missing_out "--out DIR is required" "$MSKX_BIN" synth --studies 14
check_fails stray_argument "unexpected argument 'stray'" "$MSKX_BIN" synth --out "$T/x" stray
if [ ! -e "$T/x" ]; then pass nothing_written_on_bad_options; else fail nothing_written_on_bad_options "$T/x exists"; fi

cat "$m"/*.csv "$T/d/synth_findings.csv" | md5sum > "$T/first.md5"
md5sum "$m/train/XR_SHOULDER/patient00001/study1_"*/image1.png | cut -d' ' -f1 >> "$T/first.md5"
check_fails refuse_non_empty "$m: folder exists and is not empty \(use --force" \
  "$MSKX_BIN" synth --out "$T/d" "${tiny[@]}"
check force_rewrites "$MSKX_BIN" synth --out "$T/d" "${tiny[@]}" --force --threads 1
cat "$m"/*.csv "$T/d/synth_findings.csv" | md5sum > "$T/second.md5"
md5sum "$m/train/XR_SHOULDER/patient00001/study1_"*/image1.png | cut -d' ' -f1 >> "$T/second.md5"
if cmp -s "$T/first.md5" "$T/second.md5"; then pass same_bytes_on_rerun
else fail same_bytes_on_rerun "CSVs or first image differ between runs"; fi
rm -rf "$T"
