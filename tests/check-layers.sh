#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The library's files are in layers (ARCHITECTURE.md): a file includes
# only headers of its own layer or below. Every file of src/ must have a
# layer here, so that a new file is placed on purpose.
#
#   tests/check-layers.sh [REPOSITORY_ROOT]
set -euo pipefail
cd "${1:-$(dirname "${BASH_SOURCE[0]}")/..}/src"

declare -A layer=(
  # 0: no library state; codecs, files, options, names, addresses
  [hash]=0 [table]=0 [codec]=0 [file]=0 [options]=0 [names]=0 [whitelist]=0
  # 1: the limit tree and its index
  [index]=1 [tree]=1 [marks]=1
  # 2: the counter stores behind store.h's ops table
  [store]=2 [judge]=2 [store_mem]=2 [store_mem_snapshot]=2 [store_redis]=2
  [store_uri]=2
  # 3: implicit mailboxes (objects the store may hold)
  [implicit]=3
  # 4: the engine: configuration, store, locks
  [engine]=4
  # 5: what the public functions do with an engine
  [journal]=5 [snapshot]=5 [admin]=5 [config]=5 [decide]=5 [report]=5
  [panel]=5 [async]=5
  [notify]=5 [forward]=5
)

bad=0 checked=0
for f in *.c *.h; do
  stem=${f%.*}
  if [[ -z ${layer[$stem]+set} ]]; then
    echo "no layer for src/$f: add it to tests/check-layers.sh"
    bad=$((bad + 1))
    continue
  fi
  while IFS= read -r inc; do
    dep=${inc%.h}
    [[ $dep == obspam ]] && continue # the public header, below everything
    checked=$((checked + 1))
    if [[ -z ${layer[$dep]+set} ]]; then
      echo "src/$f includes $inc, which has no layer"
      bad=$((bad + 1))
    elif ((layer[$dep] > layer[$stem])); then
      echo "src/$f (layer ${layer[$stem]}) includes $inc (layer ${layer[$dep]})"
      bad=$((bad + 1))
    fi
  done < <(sed -n 's/^#include "\([a-z_]*\.h\)"$/\1/p' "$f")
done
echo "$checked includes checked, $bad wrong"
((bad == 0))
