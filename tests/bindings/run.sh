#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Tests the Python and PHP bindings against a built libobspam:
#
#   tests/bindings/run.sh [BUILD_DIR]      (default: build/)
#
# BUILD_DIR holds libobspam.so.1 (cmake --build BUILD_DIR). Installs php-cli
# (and python3, python3-venv, python3-setuptools, python3-wheel,
# php-codesniffer, composer) when missing (apt-get, only then), then runs:
#
#   decls      bindings/php/obspam_ffi.h against include/obspam.h
#   tables     the tables of bindings/README.md against include/obspam.h and
#              the two bindings (tests/bindings/check_tables.py)
#   python     tests/bindings/test_python.py (unittest), once per python3
#   php        tests/bindings/test_php.php
#   phpcs      the PHP binding is PSR-12 clean (Debian's php-codesniffer)
#   composer   `composer validate` of bindings/php/composer.json (Debian's
#              composer), and its PSR-4 autoload finds every class
#   stream     one decision stream through C, Python and PHP: same output
#   pip        `pip install --no-build-isolation bindings/python` into a
#              fresh venv, offline, with Debian's setuptools
#   cmake-python  -DOBSPAM_INSTALL_PYTHON=ON installs the package where the
#              system's Python finds it (dist-packages)
#   examples   tests/bindings/test_examples.py: examples/admin_report.py and
#              examples/admin_report.php, in-process and over a control
#              socket served by ctl_testd (built in BUILD_DIR when
#              missing), the PHP page also served by `php -S` with
#              ffi.enable=preload (FFI preloaded as on php-fpm)
#
# Prints what it runs and ends with one line "N passed, N failed" (unit
# tests and assertions count one each, the other checks one each); exits
# non-zero when anything failed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
BUILD=${1:-build}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd || echo "$BUILD")
LIB="$BUILD/libobspam.so.1"
CC=${CC:-cc}
HERE=tests/bindings

passed=0
failed=0
results=()

# shellcheck source=tests/lib/deps.sh
. tests/lib/deps.sh

step() {
  printf '\n==> %s\n' "$*"
}

# pass NAME [COUNT] / fail NAME [COUNT] [WHY]
pass() {
  passed=$((passed + ${2:-1}))
  results+=("$(printf '%-11s ok (%s)' "$1" "${2:-1}")")
}
fail() {
  failed=$((failed + ${2:-1}))
  results+=("$(printf '%-11s FAILED: %s' "$1" "${3:-see above}")")
}

# run_logged LOG COMMAND...: runs a command, shows its output, keeps it.
run_logged() {
  local log=$1
  shift
  echo "+ $*"
  "$@" 2>&1 | tee "$log"
  return "${PIPESTATUS[0]}"
}

TMP=$(mktemp -d /tmp/obspam-bindings.XXXXXX)
cleanup() {
  rm -rf "$TMP"
}
trap cleanup EXIT

export PYTHONDONTWRITEBYTECODE=1 # keep the source tree clean
export OBSPAM_LIBRARY="$LIB"

step "Dependencies"
if ! obspam_need_packages php-cli python3 python3-setuptools python3-wheel; then
  echo "run.sh: cannot install php-cli, python3, python3-setuptools and python3-wheel" >&2
fi
# The PSR-12 and composer checks: skipped (and said so) where they cannot
# be installed.
obspam_need_packages php-codesniffer composer ||
  echo "run.sh: cannot install php-codesniffer and composer" >&2
# The pip test makes a venv: Debian's own python3 needs python3-venv.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  obspam_need_packages python3-venv || echo "run.sh: cannot install python3-venv" >&2
fi
if ! command -v php >/dev/null || ! php -r 'exit(extension_loaded("ffi") ? 0 : 1);'; then
  echo "run.sh: php with the FFI extension is needed (Debian's php-cli has it)" >&2
  fail deps 1 "no php with FFI"
fi
if [[ ! -e $LIB ]]; then
  echo "run.sh: no $LIB: build the library first" \
    "(cmake -S . -B $BUILD && cmake --build $BUILD)" >&2
  fail library 1 "no $LIB"
  echo
  echo "$passed passed, $failed failed"
  exit 1
fi
echo "library: $LIB ($(php -r 'echo "PHP ", PHP_VERSION;' 2>/dev/null), $(python3 --version))"

step "Helpers: abi.c, fake_v2.c and stream.c built with $CC"
helpers_ok=1
echo "+ $CC -std=c99 -Wall -Wextra -pedantic -Werror -I include $HERE/abi.c -o $TMP/abi"
"$CC" -std=c99 -Wall -Wextra -pedantic -Werror -I include "$HERE/abi.c" -o "$TMP/abi" &&
  "$TMP/abi" >"$TMP/abi.txt" || helpers_ok=0
echo "+ $CC -shared -fPIC $HERE/fake_v2.c -o $TMP/libobspam_fake_v2.so (and _v1_2.so)"
"$CC" -shared -fPIC "$HERE/fake_v2.c" -o "$TMP/libobspam_fake_v2.so" || helpers_ok=0
"$CC" -shared -fPIC -DFAKE_MAJOR=1 -DFAKE_MINOR=2 "$HERE/fake_v2.c" \
  -o "$TMP/libobspam_fake_v1_2.so" || helpers_ok=0
echo "+ $CC -std=c99 ... $HERE/stream.c -L $BUILD -lobspam -o $TMP/stream"
"$CC" -std=c99 -Wall -Wextra -Wshadow -Wconversion -pedantic -Werror -I include \
  "$HERE/stream.c" -L "$BUILD" -lobspam -Wl,-rpath,"$BUILD" -o "$TMP/stream" ||
  helpers_ok=0
if [[ $helpers_ok -eq 1 ]]; then pass helpers; else fail helpers; fi
export OBSPAM_TEST_ABI="$TMP/abi.txt"
export OBSPAM_TEST_FAKE_V2="$TMP/libobspam_fake_v2.so"
export OBSPAM_TEST_FAKE_V1_2="$TMP/libobspam_fake_v1_2.so"

step "decls: the PHP declaration file against include/obspam.h"
if run_logged "$TMP/decls.log" python3 "$HERE/check_ffi_decls.py" --self-test; then
  pass decls
else
  fail decls
fi

step "tables: the tables of bindings/README.md against the header and the bindings"
if run_logged "$TMP/tables.log" python3 "$HERE/check_tables.py" --self-test; then
  pass tables
else
  fail tables
fi

# python_tests NAME INTERPRETER
python_tests() {
  local name=$1 python=$2 log="$TMP/$1.log" total bad
  step "$name: tests/bindings/test_python.py with $python ($("$python" --version 2>&1))"
  run_logged "$log" "$python" -m unittest "$HERE/test_python.py"
  local rc=$? n
  total=$(sed -nE 's/^Ran ([0-9]+) tests? .*/\1/p' "$log" | tail -n 1)
  total=${total:-0}
  bad=0
  # "FAILED (failures=1, errors=2)"
  while read -r n; do
    bad=$((bad + n))
  done < <(sed -nE 's/^FAILED \((.*)\)$/\1/p' "$log" | grep -oE '(failures|errors)=[0-9]+' | cut -d= -f2)
  if [[ $rc -ne 0 && $bad -eq 0 ]]; then
    bad=1
  fi
  if [[ $bad -eq 0 ]]; then
    pass "$name" "$total"
  else
    passed=$((passed + total - bad))
    fail "$name" "$bad" "$bad of $total tests"
  fi
}
python_tests python python3
if [[ -x /usr/bin/python3 ]] &&
  [[ $(/usr/bin/python3 -c 'import sys; print(sys.executable)') != $(python3 -c 'import sys; print(sys.executable)') ]]; then
  python_tests python-deb /usr/bin/python3
fi

step "php: tests/bindings/test_php.php"
echo "+ php $HERE/test_php.php"
php "$HERE/test_php.php" 2>&1 | tee "$TMP/php.log"
rc=${PIPESTATUS[0]}
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$TMP/php.log" | tail -n 1)
if [[ -n $line ]]; then
  p=${line%% passed*}
  f=$(sed -E 's/.* ([0-9]+) failed/\1/' <<<"$line")
  passed=$((passed + p))
  if [[ $f -eq 0 && $rc -eq 0 ]]; then
    results+=("$(printf '%-11s ok (%s)' php "$p")")
  else
    fail php "$((f > 0 ? f : 1))" "$f of $((p + f)) assertions"
  fi
else
  fail php 1 "the script did not finish (exit $rc)"
fi

step "phpcs: bindings/php against PSR-12"
if command -v phpcs >/dev/null; then
  if run_logged "$TMP/phpcs.log" phpcs --standard=PSR12 bindings/php/src bindings/php/obspam.php; then
    pass phpcs
  else
    fail phpcs
  fi
else
  echo "phpcs is not installed (Debian: php-codesniffer): PSR-12 not checked"
  results+=("$(printf '%-11s skipped: no phpcs' phpcs)")
fi

step "composer: composer validate, and its PSR-4 autoloader"
if command -v composer >/dev/null; then
  cp -r bindings/php "$TMP/composer"
  rm -rf "$TMP/composer/vendor"
  # --strict: a warning fails too. The autoloader made from composer.json
  # must find every class of src/ by its name alone.
  if (cd "$TMP/composer" && COMPOSER_ALLOW_SUPERUSER=1 composer validate --strict --no-check-publish &&
    COMPOSER_ALLOW_SUPERUSER=1 composer dump-autoload --no-interaction -q) >"$TMP/composer.log" 2>&1 &&
    php -r '
      require $argv[1] . "/vendor/autoload.php";
      foreach (glob($argv[1] . "/src/*.php") as $f) {
          $class = "Obspam\\" . basename($f, ".php");
          if (!class_exists($class)) { fwrite(STDERR, "not autoloaded: $class\n"); exit(1); }
      }
      echo "autoloaded: ", count(glob($argv[1] . "/src/*.php")), " classes\n";
    ' "$TMP/composer" >>"$TMP/composer.log" 2>&1; then
    cat "$TMP/composer.log"
    pass composer
  else
    cat "$TMP/composer.log"
    fail composer
  fi
else
  echo "composer is not installed (Debian: composer): composer.json not validated"
  results+=("$(printf '%-11s skipped: no composer' composer)")
fi

step "stream: $(grep -c '^d ' "$HERE/stream.txt") messages through C, Python and PHP"
args=("$HERE/stream.conf" "$HERE/stream.txt")
echo "+ $TMP/stream ${args[*]} > c.out"
"$TMP/stream" "${args[@]}" >"$TMP/c.out" || echo "stream (C) failed"
echo "+ python3 $HERE/stream.py ${args[*]} > py.out"
PYTHONPATH=bindings/python python3 "$HERE/stream.py" "${args[@]}" >"$TMP/py.out" ||
  echo "stream.py failed"
echo "+ php $HERE/stream.php ${args[*]} > php.out"
php "$HERE/stream.php" "${args[@]}" >"$TMP/php.out" || echo "stream.php failed"
wc -l "$TMP/c.out" "$TMP/py.out" "$TMP/php.out" | sed "s|$TMP/||"
echo "verdicts in c.out (action: count):" \
  "$(awk '$1 == "verdict" { n[$2]++ } END { for (a in n) printf "%s:%d ", a, n[a] }' "$TMP/c.out")"
absent=
for action in 0 1 2 3; do
  grep -q "^verdict $action " "$TMP/c.out" || absent+=" $action"
done
for kind in notice report history stats error window cap effective list top reset unknown-uid; do
  grep -q "^$kind " "$TMP/c.out" || absent+=" $kind"
done
if [[ -z $absent && $(grep -c '^verdict ' "$TMP/c.out") -ge 300 ]]; then
  pass stream-c
else
  fail stream-c 1 "the C output lacks:${absent:- 300 verdicts}"
fi
for lang in py php; do
  if diff -u "$TMP/c.out" "$TMP/$lang.out" >"$TMP/$lang.diff"; then
    echo "c.out and $lang.out are identical"
    pass "stream-$lang"
  else
    head -n 40 "$TMP/$lang.diff"
    fail "stream-$lang" 1 "$lang.out differs from the C output"
  fi
done

step "pip: pip install --no-build-isolation into a fresh venv, with no index"
# Debian's python3 with its setuptools and wheel, seen from the venv: no
# package index is needed (bindings/README.md, "Installing"). The source is
# copied first: setuptools writes build/ and *.egg-info beside it.
cp -r bindings/python "$TMP/python-src"
if /usr/bin/python3 -m venv --system-site-packages "$TMP/venv" >"$TMP/venv.log" 2>&1; then
  echo "+ PIP_NO_INDEX=1 $TMP/venv/bin/pip install --no-build-isolation bindings/python"
  if env -u PIP_FIND_LINKS PIP_NO_INDEX=1 "$TMP/venv/bin/pip" install --no-build-isolation \
    "$TMP/python-src" >"$TMP/pip.log" 2>&1 &&
    (cd "$TMP" && "$TMP/venv/bin/python" -c '
import obspam, os, sys
assert os.path.dirname(obspam.__file__).startswith(sys.prefix), obspam.__file__
with obspam.Engine() as e:
    e.load_config_string("subscription s\ndomain d.example subscription=s\n")
    assert e.decide(sasl_username="a@d.example").action == obspam.ACCEPT
import importlib.metadata as m
assert m.version("obspam") == obspam.__version__, m.version("obspam")
assert m.metadata("obspam")["License"] == "MIT", m.metadata("obspam")["License"]
assert os.path.exists(os.path.join(os.path.dirname(obspam.__file__), "py.typed"))
print("installed:", obspam.__file__, "obspam", obspam.__version__, "library", obspam.version_string())
'); then
    tail -n 1 "$TMP/pip.log"
    pass pip
  else
    cat "$TMP/pip.log"
    fail pip
  fi
else
  cat "$TMP/venv.log"
  fail pip 1 "python3 -m venv failed"
fi

step "cmake-python: -DOBSPAM_INSTALL_PYTHON=ON, prefix /usr, into a DESTDIR"
# Configuring is enough: the Python component installs files only.
if cmake -S . -B "$TMP/cmake-python" -DCMAKE_INSTALL_PREFIX=/usr -DOBSPAM_INSTALL_PYTHON=ON \
  -DOBSPAM_BUILD_TESTS=OFF -DOBSPAM_BUILD_BENCH=OFF -DOBSPAM_BUILD_EXAMPLES=OFF \
  -DOBSPAM_BUILD_DAEMONS=OFF \
  >"$TMP/cmake-python.log" 2>&1 &&
  DESTDIR="$TMP/root" cmake --install "$TMP/cmake-python" --component Python \
    >>"$TMP/cmake-python.log" 2>&1; then
  dir=$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_path("purelib", "deb_system"))' 2>/dev/null ||
    echo /usr/lib/python3/dist-packages)
  echo "expected in $dir (the system Python's dist-packages)"
  if [[ -f $TMP/root$dir/obspam/__init__.py && -f $TMP/root$dir/obspam/py.typed ]] &&
    ! find "$TMP/root" -name '__pycache__' | grep -q . &&
    (cd "$TMP" && PYTHONPATH="$TMP/root$dir" /usr/bin/python3 -c '
import obspam, sys
assert obspam.__file__.startswith(sys.argv[1]), obspam.__file__
print("cmake-installed:", obspam.__file__, obspam.version_string())' "$TMP/root$dir"); then
    pass cmake-python
  else
    cat "$TMP/cmake-python.log"
    find "$TMP/root" | head -n 20
    fail cmake-python
  fi
else
  cat "$TMP/cmake-python.log"
  fail cmake-python
fi

step "examples: admin_report.py and admin_report.php, in-process and over a control socket"
# tests/bindings/test_examples.py serves the control socket with
# ctl_testd, built in BUILD_DIR when it is missing.
log="$TMP/examples.log"
run_logged "$log" env OBSPAM_TEST_BUILD="$BUILD" python3 -m unittest -v "$HERE/test_examples.py"
rc=$?
total=$(sed -nE 's/^Ran ([0-9]+) tests? .*/\1/p' "$log" | tail -n 1)
total=${total:-0}
bad=$(grep -cE '^(FAIL|ERROR): ' "$log")
if [[ $rc -eq 0 && $bad -eq 0 && $total -gt 0 ]]; then
  pass examples "$total"
else
  passed=$((passed + total - bad))
  fail examples "$((bad > 0 ? bad : 1))" "$bad of $total tests"
fi

step "Summary"
printf '%s\n' "${results[@]}"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
