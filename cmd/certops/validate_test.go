package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// run executes certops in process and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := newRootCommand(&stdout, &stderr)
	cmd.SetArgs(args)
	err := cmd.Execute()
	code := 0
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case err != nil:
		stderr.WriteString(err.Error())
		code = 1
	}
	return stdout.String(), stderr.String(), code
}

func TestValidateQuickstart(t *testing.T) {
	out, errOut, code := run(t, "validate", "../../examples/quickstart")
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and no problems", code, out, errOut)
	}
}

func TestValidateInvalidCorpus(t *testing.T) {
	dirs, err := filepath.Glob("../../spec/testdata/invalid/*")
	if err != nil || len(dirs) < 30 {
		t.Fatalf("corpus: %d cases, %v", len(dirs), err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, "want.txt"))
			if err != nil {
				t.Fatal(err)
			}
			out, _, code := run(t, "validate", dir)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if diff := cmp.Diff(string(want), out); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateOutputs(t *testing.T) {
	dir := "../../spec/testdata/invalid/rsa-1024"
	out, _, code := run(t, "validate", "--output", "github", dir)
	want := "::error file=certificates/web.yaml,line=12,col=11,title=certops validate::spec.privateKey.size: RSA key size 1024 is out of range: 2048 to 8192\n"
	if code != 1 || out != want {
		t.Errorf("github output: exit %d\n got %q\nwant %q", code, out, want)
	}
	out, _, _ = run(t, "validate", "-o", "json", dir)
	var v struct {
		Valid    bool
		Problems []struct {
			File  string
			Line  int
			Field string
		}
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if v.Valid || len(v.Problems) != 1 || v.Problems[0].Field != "spec.privateKey.size" || v.Problems[0].Line != 12 {
		t.Errorf("json output = %+v", v)
	}
}

func TestPlanQuickstart(t *testing.T) {
	out, errOut, code := run(t, "plan", "../../examples/quickstart")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[0], "RENEW AT") {
		t.Fatalf("no header: %q", lines[0])
	}
	if len(lines) != 5 {
		t.Fatalf("got %d rows, want 4 certificates:\n%s", len(lines)-1, out)
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if f[2] != "issue" || f[3] != "DoesNotExist" {
			t.Errorf("row %q: want ACTION issue, REASON DoesNotExist", l)
		}
	}
}

func TestIssuersProviders(t *testing.T) {
	out, _, code := run(t, "issuers", "providers")
	for _, want := range []string{"dnsupdate\n", "route53\n", "cloudflare\n", "gcloud\n", "digitalocean\n", "exec\n", "httpreq\n", "azuredns\n", "alias rfc2136=dnsupdate\n", "alias azure=azuredns\n"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("issuers providers lacks %q (exit %d):\n%s", want, code, out)
		}
	}
}
