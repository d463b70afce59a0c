#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# An install into a non-system prefix works as it is, without
# LD_LIBRARY_PATH: `cmake --install BUILD_DIR --prefix TMP/opt` then
#
#   - the installed daemons find the installed library (an RPATH relative to
#     themselves) and answer --version with the project's version;
#   - obspam.pc names no private dependency for a shared build (no hiredis
#     in --cflags or --libs, and --libs works where hiredis.pc is missing),
#     and keeps it in Libs.private for --static;
#   - the CMake package names hiredis by a target, never by a path;
#   - a program built with pkg-config and one built with find_package(obspam)
#     (shared and static) run against it;
#   - a configuration for the /usr prefix gives the daemons no RPATH;
#   - the manual pages and the licence are installed.
#
#   tests/daemons/install_prefix.sh BUILD_DIR
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BUILD=$(cd "${1:?usage: install_prefix.sh BUILD_DIR}" && pwd)
TMP=$(mktemp -d /tmp/obspam-install-prefix.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
PREFIX=$TMP/opt/obspam
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$BUILD/CMakeCache.txt")
redis=$(sed -n 's/^OBSPAM_WITH_REDIS:BOOL=//p' "$BUILD/CMakeCache.txt")
fail() {
  echo "FAIL: $*"
  exit 1
}

cmake --install "$BUILD" --prefix "$PREFIX" >"$TMP/install.log"
libdir=$(dirname "$(find "$PREFIX" -name libobspam.so.1 | head -n 1)")
[[ -d $libdir ]] || fail "no libobspam.so.1 under $PREFIX"
echo "installed to $PREFIX (library in ${libdir#"$PREFIX"/})"
for f in share/man/man5/obspam.conf.5 share/man/man8/obspam-policyd.8 \
  share/man/man8/obspamctl.8 share/doc/obspam/LICENSE include/obspam.h; do
  [[ -f $PREFIX/$f ]] || fail "$f is not installed"
done

# ---- the daemons run from the prefix ------------------------------------------
daemons=()
for d in obspam-policyd obspam-milter; do
  [[ -x $PREFIX/sbin/$d ]] && daemons+=("$d")
done
[[ ${#daemons[@]} -gt 0 ]] || fail "no daemon in $PREFIX/sbin"
for d in "${daemons[@]}"; do
  out=$(env -u LD_LIBRARY_PATH "$PREFIX/sbin/$d" --version 2>&1) ||
    fail "$d --version: $out"
  [[ $out == "$d (libobspam $version)" ]] || fail "$d --version says: $out"
  lib=$(env -u LD_LIBRARY_PATH ldd "$PREFIX/sbin/$d" | awk '$1 == "libobspam.so.1" { print $3 }')
  [[ -n $lib && $(realpath "$lib") == "$(realpath "$libdir")/libobspam.so.$version" ]] ||
    fail "$d loads libobspam.so.1 from '$lib', not from $libdir"
  echo "$d --version: $out (libobspam.so.1 from the prefix)"
done

# ---- pkg-config ---------------------------------------------------------------
pc=$libdir/pkgconfig/obspam.pc
[[ -f $pc ]] || fail "no $pc"
# Only the installed .pc files: hiredis.pc is not found, as on a machine
# without libhiredis-dev.
# pkg-config ends its output with a blank: taken off.
pkgc() {
  local out
  out=$(PKG_CONFIG_LIBDIR=$libdir/pkgconfig PKG_CONFIG_PATH= pkg-config "$@") || return
  echo "${out% }"
}
cflags=$(pkgc --cflags obspam) || fail "pkg-config --cflags obspam failed"
libs=$(pkgc --libs obspam) || fail "pkg-config --libs obspam failed"
[[ $cflags == "-I$PREFIX/include" ]] || fail "--cflags is '$cflags'"
[[ $libs == "-L$libdir -lobspam" ]] || fail "--libs is '$libs'"
static=$(pkgc --static --libs obspam) || fail "pkg-config --static --libs failed"
if [[ $redis == ON ]]; then
  [[ $static == *-lhiredis* ]] || fail "--static --libs lacks hiredis: $static"
fi
grep -q '^Requires' "$pc" && fail "obspam.pc requires another package: $(grep '^Requires' "$pc")"
grep -q 'MIT' "$pc" || fail "obspam.pc does not name the licence"
echo "pkg-config: --cflags '$cflags', --libs '$libs', --static --libs '$static'"

cat >"$TMP/app.c" <<'C'
#include <obspam.h>
#include <stdio.h>
int main(void) {
  obspam_engine *e = NULL;
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  obspam_message m = OBSPAM_MESSAGE_INIT;
  if (obspam_version() != OBSPAM_VERSION_NUMBER || obspam_engine_new(&e) != 0)
    return 1;
  m.sasl_username = "info@example.com";
  if (obspam_load_config_string(e, "subscription s\ndomain example.com "
                                   "subscription=s\nmailbox info@example.com "
                                   "limit=1\n") != 0 ||
      obspam_decide(e, &m, &v) != 0 || v.action != OBSPAM_ACCEPT ||
      obspam_decide(e, &m, &v) != 0 || v.action != OBSPAM_REFUSE)
    return 1;
  obspam_engine_free(e);
  printf("%s\n", obspam_version_string());
  return 0;
}
C
# shellcheck disable=SC2086 # the flags are words
cc -std=c99 -Wall -Werror $cflags "$TMP/app.c" $libs -Wl,-rpath,"$libdir" -o "$TMP/app-pc"
out=$("$TMP/app-pc") || fail "the pkg-config program failed"
[[ $out == "$version" ]] || fail "the pkg-config program says $out"
echo "pkg-config program: runs, libobspam $out"

# ---- the CMake package --------------------------------------------------------
cmdir=$libdir/cmake/obspam
if grep -rn 'libhiredis\.\|/usr/lib' "$cmdir"; then
  fail "the CMake package names a library by its path"
fi
mkdir "$TMP/consumer"
cp "$TMP/app.c" "$TMP/consumer/app.c"
cat >"$TMP/consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(obspam 1 REQUIRED)
add_executable(app_shared app.c)
target_link_libraries(app_shared PRIVATE obspam::obspam)
add_executable(app_static app.c)
target_link_libraries(app_static PRIVATE obspam::obspam_static)
CM
cmake -S "$TMP/consumer" -B "$TMP/consumer/build" -DCMAKE_PREFIX_PATH="$PREFIX" \
  >"$TMP/consumer.log" 2>&1 || { cat "$TMP/consumer.log"; fail "find_package(obspam) failed"; }
cmake --build "$TMP/consumer/build" >>"$TMP/consumer.log" 2>&1 ||
  { cat "$TMP/consumer.log"; fail "the CMake consumer does not build"; }
for app in app_shared app_static; do
  out=$("$TMP/consumer/build/$app") || fail "$app failed"
  [[ $out == "$version" ]] || fail "$app says $out"
done
if readelf -d "$TMP/consumer/build/app_static" | grep -q 'libobspam'; then
  fail "app_static needs libobspam.so"
fi
echo "CMake programs: obspam::obspam and obspam::obspam_static run, libobspam $version"

# ---- no RPATH under /usr ------------------------------------------------------
# Configuring is enough: the install script says what RPATH it sets.
cmake -S "$ROOT" -B "$TMP/usr-build" -DCMAKE_INSTALL_PREFIX=/usr \
  -DOBSPAM_BUILD_TESTS=OFF -DOBSPAM_BUILD_BENCH=OFF >"$TMP/usr.log" 2>&1 ||
  { cat "$TMP/usr.log"; fail "configuring for /usr failed"; }
script=$TMP/usr-build/examples/policyd/cmake_install.cmake
if grep -q 'ORIGIN' "$script"; then
  grep -n 'RPATH' "$script"
  fail "installed under /usr, obspam-policyd would carry an RPATH"
fi
grep -q 'ORIGIN' "$BUILD/examples/policyd/cmake_install.cmake" ||
  fail "the build for $(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD/CMakeCache.txt") sets no RPATH"
echo "prefix /usr: no RPATH"
