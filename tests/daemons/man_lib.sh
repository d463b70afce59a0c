# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# The checks of a daemon's manual page that policyd_man.sh and
# milter_man.sh share. Sourced, after `set -euo pipefail`, from the
# repository's root.

# daemon_page BUILD NAME WIDTH SECTION...: BUILD/man/NAME.8 (the page as
# it is installed) renders with man(1) at WIDTH columns and groff reports
# no warning; it has every SECTION; every long option that
# BUILD/examples/NAME --help lists, and no other, has an entry in OPTIONS.
# Leaves the page's path in $PAGE, its text in $text and its options in
# $man_opts; exits on the first failure.
daemon_page() {
  local build=$1 name=$2 width=$3 warnings section help_opts
  shift 3
  PAGE=$build/man/$name.8
  warnings=$(groff -man -ww -z "$PAGE" 2>&1)
  if [[ -n $warnings ]]; then
    echo "groff warns about $PAGE:"
    echo "$warnings"
    exit 1
  fi
  text=$(MANWIDTH=$width man -l "$PAGE" 2>&1)
  for section in "$@"; do
    if ! grep -qx "$section" <<<"$text"; then
      echo "man -l $PAGE: no section $section"
      exit 1
    fi
  done
  help_opts=$("$build/examples/$name" --help |
    grep -o -- '^  --[a-z-]*' | tr -d ' ' | sort -u)
  man_opts=$(sed -n '/^OPTIONS$/,/^POSTFIX CONFIGURATION$/p' <<<"$text" |
    grep -o -- '^       --[a-z-]*' | tr -d ' ' | sort -u)
  if [[ $help_opts != "$man_opts" ]]; then
    echo "--help and the man page list different options:"
    diff <(echo "$help_opts") <(echo "$man_opts") || true
    exit 1
  fi
}
