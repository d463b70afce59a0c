#!/usr/bin/env bash
# The first thing to run on a fresh Debian machine (as root): installs what
# is missing, builds libobspam and its examples (no tests) in build-demo/,
# and runs them.
#
#   examples/demo.sh
#
# Each step is a function; a new demo is one more demo_* function called
# from main.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=tests/lib/deps.sh
. tests/lib/deps.sh

BUILD_DIR=${OBSPAM_DEMO_BUILD_DIR:-build-demo}
PACKAGES=(cmake make gcc libc6-dev libxxhash-dev uthash-dev)

step() {
  printf '\n==> %s\n' "$*"
}

demo_deps() {
  step "Checking the Debian packages needed to build"
  obspam_need_packages "${PACKAGES[@]}"
}

demo_build() {
  step "Building libobspam and the examples in $BUILD_DIR/"
  mkdir -p "$BUILD_DIR"
  local log="$BUILD_DIR/demo-build.log"
  if ! { cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DOBSPAM_BUILD_TESTS=OFF -DOBSPAM_BUILD_BENCH=OFF \
    -DOBSPAM_BUILD_EXAMPLES=ON &&
    cmake --build "$BUILD_DIR" -j 2; } >"$log" 2>&1; then
    cat "$log"
    echo "demo.sh: the build failed (log: $log)" >&2
    return 1
  fi
  echo "Built $BUILD_DIR/libobspam.so.1 and $BUILD_DIR/examples/ (log: $log)."
}

demo_quickstart() {
  step "Running the quickstart ($BUILD_DIR/examples/quickstart, source: examples/quickstart.c)"
  echo
  "$BUILD_DIR/examples/quickstart"
}

main() {
  demo_deps
  demo_build
  demo_quickstart
}

main "$@"
