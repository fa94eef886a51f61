#!/usr/bin/env bash
# Builds the real peers the tests run against, from pinned versions, into one
# folder:
#   ${CERTOPS_TOOLS_BIN:-$HOME/.cache/certops/tools/bin}
#
# Tools come from Go modules: this one (the table below and tools.extra) and
# one sub-module per heavy peer whose dependency graph must not mix with the
# others (kube/ for kube-apiserver and etcd, vault/ for Vault). Each sub-module
# lists its tools in its tools.list, one `name package [ldflags]` a line.
#
# A tool is rebuilt only when its module's go.sum, its list or this script
# changed since it was last built (a stamp file per tool), so warm runs take a
# second.
#
# Usage: build.sh [TOOL...]   (default: every tool, in the order listed)
set -euo pipefail
cd "$(dirname "$0")"
root=$PWD

bin=${CERTOPS_TOOLS_BIN:-$HOME/.cache/certops/tools/bin}
mkdir -p "$bin"

# dir  name  package  [ldflags]
tools() {
  cat <<'TABLE' | sed 's/^/. /'
pebble              github.com/letsencrypt/pebble/v2/cmd/pebble
pebble-challtestsrv github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv
sops                github.com/getsops/sops/v3/cmd/sops
TABLE
  if [ -f tools.extra ]; then grep -v '^\s*#' tools.extra | sed 's/^/. /'; fi
  for list in */tools.list; do
    [ -f "$list" ] || continue
    grep -v '^\s*#' "$list" | sed "s#^#$(dirname "$list") #"
  done
}

want=("$@")
declare -A stamp_keys
stamp_key() { # dir
  if [ -z "${stamp_keys[$1]:-}" ]; then
    stamp_keys[$1]=$(cd "$1" && cat go.sum "$root/build.sh" tools.extra tools.list 2>/dev/null | sha256sum | cut -c1-16)
  fi
  echo "${stamp_keys[$1]}"
}

built=()
while read -r dir name pkg ldflags; do
  [ -n "${name:-}" ] || continue
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then continue; fi
  built+=("$name")
  key=$(stamp_key "$dir")
  stamp="$bin/.$name.stamp"
  if [ -x "$bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$key" ]; then
    continue
  fi
  echo "► building $name ($pkg, module $dir)" >&2
  start=$SECONDS
  (cd "$dir" && go build -trimpath -ldflags "-s -w ${ldflags:-}" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  echo "$key" > "$stamp"
  echo "✔ $name in $((SECONDS - start))s" >&2
done < <(tools)

for w in "${want[@]}"; do
  [[ " ${built[*]} " == *" $w "* ]] || { echo "build.sh: unknown tool $w" >&2; exit 2; }
done
echo "$bin"
