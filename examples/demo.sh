#!/usr/bin/env bash
# make demo: one pass of certops on the quick-start repository, on a local
# Git remote, with the private CA issuer. Needs only Go and git; leaves
# nothing running; everything lives in a temporary folder, removed at the end
# (set KEEP=1 to keep it). When `make tools` has built kube-apiserver and
# etcd, it also starts a throwaway cluster and applies the Secrets to it.
set -euo pipefail
cd "$(dirname "$0")/.."
certops=${CERTOPS:-$PWD/bin/certops}
tools=${CERTOPS_TOOLS_BIN:-$HOME/.cache/certops/tools/bin}
tmp=$(mktemp -d)
cluster_pid=
cleanup() {
  if [ -n "$cluster_pid" ]; then
    kill -TERM "$cluster_pid" 2>/dev/null || true
    wait "$cluster_pid" 2>/dev/null || true
  fi
  if [ "${KEEP:-}" != 1 ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT
if [ "${KEEP:-}" = 1 ]; then echo "► keeping $tmp"; fi
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
export GIT_AUTHOR_NAME="Demo Human" GIT_AUTHOR_EMAIL=human@example.com
export GIT_COMMITTER_NAME="Demo Human" GIT_COMMITTER_EMAIL=human@example.com
apply=--apply=false # the quick-start's clusters are not reachable here
step() { printf '\n\033[1m► %s\033[0m\n' "$*"; }

step "scaffold a certificate repository from examples/quickstart, with a fresh age key"
"$certops" init --identity "$tmp/age.key" "$tmp/work" >/dev/null

if [ -x "$tools/kube-apiserver" ] && [ -x "$tools/etcd" ]; then
  step "start a local kube-apiserver and etcd (built by make tools) as the quick-start's clusters"
  go build -o "$tmp/democluster" ./examples/democluster
  "$tmp/democluster" serve -kubeconfig "$tmp/kubeconfig" -tools "$tools" -namespaces web,api,platform \
    2>"$tmp/cluster.log" &
  cluster_pid=$!
  for _ in $(seq 1 360); do
    [ -f "$tmp/kubeconfig" ] && break
    kill -0 "$cluster_pid" 2>/dev/null || { cat "$tmp/cluster.log"; exit 1; }
    sleep 0.5
  done
  [ -f "$tmp/kubeconfig" ] || { echo "the local cluster did not start"; cat "$tmp/cluster.log"; exit 1; }
  # Both of the quick-start's clusters (dev, prod) point at this one.
  sed -i "s#/etc/certops/kubeconfigs/dev#$tmp/kubeconfig#; s#/etc/certops/kubeconfigs/prod#$tmp/kubeconfig#" "$tmp/work/certops.yaml"
  apply=--apply=true
  echo "kube-apiserver up; kubeconfig $tmp/kubeconfig"
else
  echo "(no kube-apiserver in $tools: run \`make tools\` to also apply the Secrets to a local cluster)"
fi
git -C "$tmp/work" init -q -b main
git -C "$tmp/work" add -A
git -C "$tmp/work" commit -qm "Request certificates"
git clone -q --bare "$tmp/work" "$tmp/remote.git"
echo "remote: file://$tmp/remote.git"

step "certops validate (what a pull request's CI runs)"
"$certops" validate "$tmp/work"

step "certops plan"
"$certops" plan "$tmp/work"

step "certops reconcile: issue, encrypt, commit, push"
"$certops" reconcile --repo "file://$tmp/remote.git" --age-identity "$tmp/age.key" \
  --state-dir "$tmp/state" --log-level warn $apply

step "the commit, with a trailer block per certificate"
git --git-dir "$tmp/remote.git" log -1 --format='%an <%ae>%n%n%B' | sed -n '1,14p'
echo "  …"

git clone -q "$tmp/remote.git" "$tmp/checkout"
step "the encrypted Secret in Git (clear-text metadata, encrypted data)"
sed -n '1,12p;/^stringData/,/^    tls.key/p' "$tmp/checkout/secrets/web/web-tls.yaml" | cut -c1-110
echo "  …"

step "certops status (offline, from the checkout)"
"$certops" status "$tmp/checkout"

step "one certificate decrypted with the age key, to show it is real"
"$certops" export web/web "$tmp/checkout" --age-identity "$tmp/age.key" --chain > "$tmp/web.pem"
if command -v openssl >/dev/null; then
  openssl x509 -in "$tmp/web.pem" -noout -subject -issuer -enddate -ext subjectAltName
  "$certops" export platform/root-ca "$tmp/checkout" --age-identity "$tmp/age.key" --chain > "$tmp/root.pem"
  openssl verify -CAfile "$tmp/root.pem" "$tmp/web.pem"
else
  head -3 "$tmp/web.pem"
fi

if [ -n "$cluster_pid" ]; then
  step "the Secrets certops applied to the local cluster"
  "$tmp/democluster" secrets -kubeconfig "$tmp/kubeconfig"
fi

step "a second pass changes nothing"
"$certops" reconcile --repo "file://$tmp/remote.git" --age-identity "$tmp/age.key" \
  --state-dir "$tmp/state" --log-level warn $apply
git --git-dir "$tmp/remote.git" log --oneline
