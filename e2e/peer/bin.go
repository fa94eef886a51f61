package peer

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// ToolsDir is the folder e2e/tools/build.sh builds the peers into.
func ToolsDir() string {
	if d := os.Getenv("CERTOPS_TOOLS_BIN"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "certops", "tools", "bin")
}

// Bin returns the path of a peer built by e2e/tools (for example "sops",
// "pebble", "kube-apiserver"). It fails the test when the binary is missing.
func Bin(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(ToolsDir(), name)
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		t.Fatalf("peer %s not found at %s: run `make tools` (e2e/tools/build.sh) first", name, p)
	}
	return p
}

// System returns the path of a program installed from Debian's packages (git,
// named, openssl, age). It fails the test when the program is missing.
func System(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	t.Fatalf("peer %s not found on PATH or in /usr/sbin: run `make deps` (scripts/install-deps.sh) first", name)
	return ""
}

// GitEnv is the environment every git CLI call in tests runs with: no user or
// system configuration, no prompts, and a fixed identity.
func GitEnv() []string {
	return append(os.Environ(),
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Test Human",
		"GIT_AUTHOR_EMAIL=human@example.test",
		"GIT_COMMITTER_NAME=Test Human",
		"GIT_COMMITTER_EMAIL=human@example.test",
	)
}
