#!/usr/bin/env bash
# Builds the real peers the tests run against, from pinned versions in this
# module's go.mod, into one folder:
#   ${CERTOPS_TOOLS_BIN:-$HOME/.cache/certops/tools/bin}
# A tool is rebuilt only when this module's go.sum or this script changed since
# it was last built (a stamp file per tool), so warm runs take a second.
#
# Usage: build.sh [TOOL...]   (default: every tool in the table below)
set -euo pipefail
cd "$(dirname "$0")"

bin=${CERTOPS_TOOLS_BIN:-$HOME/.cache/certops/tools/bin}
mkdir -p "$bin"

# name  package  [ldflags]
tools() {
  cat <<'TABLE'
pebble              github.com/letsencrypt/pebble/v2/cmd/pebble
pebble-challtestsrv github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv
sops                github.com/getsops/sops/v3/cmd/sops
TABLE
  if [ -f tools.extra ]; then grep -v '^#' tools.extra; fi
}

want=("$@")
stamp_key=$(cat go.sum build.sh tools.extra 2>/dev/null | sha256sum | cut -c1-16)

while read -r name pkg ldflags; do
  [ -n "${name:-}" ] || continue
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then continue; fi
  stamp="$bin/.$name.stamp"
  if [ -x "$bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$stamp_key" ]; then
    continue
  fi
  echo "► building $name ($pkg)" >&2
  start=$SECONDS
  go build -trimpath -ldflags "-s -w ${ldflags:-}" -o "$bin/$name.tmp" "$pkg"
  mv "$bin/$name.tmp" "$bin/$name"
  echo "$stamp_key" > "$stamp"
  echo "✔ $name in $((SECONDS - start))s" >&2
done < <(tools)
echo "$bin"
