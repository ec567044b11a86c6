# Sourced by scripts/demo.sh and scripts/test.sh before cargo runs: what the LightGBM build
# (crate lightgbm3-sys, the re-ranker's LambdaMART) needs besides a C++ compiler.
# - libclang (bindgen reads LightGBM's C header): Debian's libclang-dev, installed if missing;
# - cmake >= 3.28: the system's when new enough, else PyPI's `cmake` wheel in a virtual
#   environment under ~/.cache/aisle/tools, exported as CMAKE for the cmake crate.
# Both come from package registries only. Idempotent and quick once installed.
_aisle_sudo=""; [ "$(id -u)" -ne 0 ] && _aisle_sudo="sudo"
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 && [ -z "${LIBCLANG_PATH:-}" ]; then
    echo "installing libclang-dev from Debian's packages (LightGBM's bindings)"
    $_aisle_sudo apt-get update -qq && $_aisle_sudo apt-get install -y -qq libclang-dev
fi
_aisle_cmake_ok() {
    local v
    v=$("$1" --version 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+' | head -1) || return 1
    [ -n "$v" ] || return 1
    local major=${v%%.*} minor=${v#*.}
    [ "$major" -gt 3 ] || { [ "$major" -eq 3 ] && [ "$minor" -ge 28 ]; }
}
if [ -z "${CMAKE:-}" ]; then
    if command -v cmake >/dev/null && _aisle_cmake_ok cmake; then
        export CMAKE=cmake
    else
        _aisle_tools="${AISLE_TOOLS_DIR:-$HOME/.cache/aisle/tools}"
        if ! _aisle_cmake_ok "$_aisle_tools/bin/cmake"; then
            echo "installing cmake 3.x from PyPI into $_aisle_tools (LightGBM's build)"
            "${PYTHON:-python3}" -m venv "$_aisle_tools"
            "$_aisle_tools/bin/pip" install -q --disable-pip-version-check 'cmake>=3.28,<4'
        fi
        export CMAKE="$_aisle_tools/bin/cmake"
    fi
fi
unset -f _aisle_cmake_ok
