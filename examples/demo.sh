#!/usr/bin/env bash
# make demo: one pass of certops on the quick-start repository, on a local
# Git remote, with the private CA issuer. Needs only Go and git; leaves
# nothing running; everything lives in a temporary folder, removed at the end
# (set KEEP=1 to keep it).
set -euo pipefail
cd "$(dirname "$0")/.."
certops=${CERTOPS:-$PWD/bin/certops}
tmp=$(mktemp -d)
if [ "${KEEP:-}" = 1 ]; then echo "► keeping $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
export GIT_AUTHOR_NAME="Demo Human" GIT_AUTHOR_EMAIL=human@example.com
export GIT_COMMITTER_NAME="Demo Human" GIT_COMMITTER_EMAIL=human@example.com
apply=--apply=false # the quick-start's clusters are not reachable here
step() { printf '\n\033[1m► %s\033[0m\n' "$*"; }

step "scaffold a certificate repository from examples/quickstart, with a fresh age key"
"$certops" init --identity "$tmp/age.key" "$tmp/work" >/dev/null
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

step "a second pass changes nothing"
"$certops" reconcile --repo "file://$tmp/remote.git" --age-identity "$tmp/age.key" \
  --state-dir "$tmp/state" --log-level warn $apply
git --git-dir "$tmp/remote.git" log --oneline
