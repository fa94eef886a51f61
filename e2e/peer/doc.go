// Package peer starts the real programs certops talks to — a git server,
// Pebble, BIND, kube-apiserver with etcd, Vault, the sops CLI — on loopback,
// for tests. Every starter takes a testing.TB, registers its own cleanup, and
// fails the test (never skips it) when the peer's binary is missing, naming
// the binary and the command that builds it (`make tools` or `make deps`).
//
// Binaries built from Go modules live in the folder named by the environment
// variable CERTOPS_TOOLS_BIN (default $HOME/.cache/certops/tools/bin), filled
// by e2e/tools/build.sh. Debian packages are found on PATH or in /usr/sbin.
//
// It is test support only: no production package imports it.
package peer
