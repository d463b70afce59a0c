# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Installs the Debian packages a script needs, and only those missing.
# Sourced by tests/run.sh and examples/demo.sh.
#
#   . tests/lib/deps.sh
#   obspam_need_packages cmake gcc libxxhash-dev

# obspam_need_packages PKG... : apt-get installs every PKG that dpkg does not
# list as installed; does nothing (and needs no network) when all are there.
obspam_need_packages() {
  local pkg status missing=()
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: no dpkg-query here (not Debian?); make sure these are" \
      "installed: $*" >&2
    return 0
  fi
  for pkg in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    return 0
  fi

  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "deps: missing packages (${missing[*]}) and not root: run" \
        "apt-get install ${missing[*]} as root" >&2
      return 1
    fi
    sudo=(sudo)
  fi
  echo "deps: installing ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}
