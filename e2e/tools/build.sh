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
# What goes into a binary besides its module's dependencies. A tool is
# rebuilt when this, its module's go.sum or its list changes; editing the
# rest of this script does not rebuild anything.
goflags=(-trimpath)
ldflags_common="-s -w"
declare -A stamp_keys
stamp_key() { # dir
  if [ -z "${stamp_keys[$1]:-}" ]; then
    stamp_keys[$1]=$(cd "$1" && { cat go.sum tools.extra tools.list 2>/dev/null; echo "${goflags[*]} $ldflags_common"; } | sha256sum | cut -c1-16)
  fi
  echo "${stamp_keys[$1]}"
}

# Builds run CERTOPS_TOOLS_JOBS at a time (default 2), the longest first:
# one build's module downloads and single-threaded link overlap another's
# compilation, which on a cold 2-core machine saves minutes.
jobs_max=${CERTOPS_TOOLS_JOBS:-2}
longest_first() { # Vault and kube-apiserver take most of a cold build
  awk '$2 == "vault" { print "0 " $0; next } $2 == "kube-apiserver" { print "1 " $0; next } { print "2 " $0 }' | sort -s -k1,1n | cut -d' ' -f2-
}

failures=$(mktemp -d)
trap 'rm -rf "$failures"' EXIT
build_one() { # dir name pkg ldflags key
  local dir=$1 name=$2 pkg=$3 ldflags=$4 key=$5 start=$SECONDS
  echo "► building $name ($pkg, module $dir)" >&2
  (cd "$dir" && go build "${goflags[@]}" -ldflags "$ldflags_common $ldflags" -o "$bin/$name.tmp" "$pkg") || {
    echo "✘ $name failed after $((SECONDS - start))s" >&2
    touch "$failures/$name"
    return 1
  }
  mv "$bin/$name.tmp" "$bin/$name"
  echo "$key" > "$bin/.$name.stamp"
  echo "✔ $name in $((SECONDS - start))s" >&2
}

built=()
while read -r dir name pkg ldflags; do
  [ -n "${name:-}" ] || continue
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then continue; fi
  built+=("$name")
  key=$(stamp_key "$dir")
  if [ -x "$bin/$name" ] && [ "$(cat "$bin/.$name.stamp" 2>/dev/null)" = "$key" ]; then
    continue
  fi
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
    wait -n || true # a failure is recorded in $failures
  done
  build_one "$dir" "$name" "$pkg" "${ldflags:-}" "$key" &
done < <(tools | longest_first)
wait
if [ -n "$(ls -A "$failures")" ]; then
  echo "build.sh: did not build: $(ls "$failures" | tr '\n' ' ')" >&2
  exit 1
fi

for w in "${want[@]}"; do
  [[ " ${built[*]} " == *" $w "* ]] || { echo "build.sh: unknown tool $w" >&2; exit 2; }
done
echo "$bin"
