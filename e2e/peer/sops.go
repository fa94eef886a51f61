package peer

import (
	"os"
	"os/exec"
	"testing"
)

// SopsDecrypt runs the real sops CLI to decrypt file with the age identity
// in keyFile, and returns what it prints. It fails the test when sops
// fails.
func SopsDecrypt(t testing.TB, keyFile, file string) string {
	t.Helper()
	cmd := exec.Command(Bin(t, "sops"), "--decrypt", file)
	cmd.Env = append(os.Environ(), "SOPS_AGE_KEY_FILE="+keyFile, "SOPS_DISABLE_VERSION_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sops --decrypt %s: %v\n%s", file, err, out)
	}
	return string(out)
}
