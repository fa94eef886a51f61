package peer

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Vault is a running `vault server -dev` on loopback (plain HTTP, in-memory
// storage, unsealed), built by e2e/tools.
type Vault struct {
	// Addr is the base URL, e.g. http://127.0.0.1:8200.
	Addr string
	// Token is the root token (random per start, test-only).
	Token string
}

// StartVault starts a Vault dev server on a free loopback port.
func StartVault(t testing.TB) *Vault {
	t.Helper()
	bin := Bin(t, "vault")
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		t.Fatal(err)
	}
	v := &Vault{Token: hex.EncodeToString(tok)}
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	v.Addr = "http://" + addr
	dir := t.TempDir()
	logPath := filepath.Join(dir, "vault.log")
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id="+v.Token, "-dev-listen-address="+addr, "-dev-no-store-token")
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "PATH=/usr/bin:/bin", "VAULT_DISABLE_MLOCK=true"}
	exited := startLogged(t, "vault", cmd, logPath)
	deadline := time.Now().Add(90 * time.Second) // generous: CI machines are shared and loaded
	for {
		resp, err := http.Get(v.Addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return v
			}
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(logPath)
			t.Fatalf("vault exited:\n%s", tail(out, 4000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault not ready at %s: %v", v.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// API calls Vault's HTTP API with the root token and returns the decoded
// JSON answer (nil for 204). It fails the test on any non-2xx status.
func (v *Vault) API(t testing.TB, method, path string, body any) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, v.Addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", v.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("vault %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("vault %s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if len(data) == 0 {
		return nil
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("vault %s %s: %v", method, path, err)
	}
	return out
}
