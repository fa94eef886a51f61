#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use: git (the test git
# server and the CLI that checks signatures), BIND 9 (DNS-01 over RFC 2136),
# openssl (chain checks and the exec issuer's test CA), age and gnupg (the CLI
# cross-check), chromium (the status page test loads the page headless).
# Safe to run again; does nothing when all are present.
set -euo pipefail

need=()
command -v git >/dev/null || need+=(git)
command -v named >/dev/null || [ -x /usr/sbin/named ] || need+=(bind9)
command -v tsig-keygen >/dev/null || [ -x /usr/sbin/tsig-keygen ] || need+=(bind9-utils)
command -v dig >/dev/null || need+=(bind9-dnsutils)
command -v openssl >/dev/null || need+=(openssl)
command -v age >/dev/null || need+=(age)
command -v gpg >/dev/null || need+=(gnupg)
command -v chromium >/dev/null || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
  echo "install-deps: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
else
  sudo=
fi
echo "install-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
