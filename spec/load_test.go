package spec

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// problemLines renders problems the way `certops validate` prints them.
func problemLines(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.Error())
		b.WriteByte('\n')
	}
	return b.String()
}

func TestInvalidCorpus(t *testing.T) {
	dirs, err := os.ReadDir("testdata/invalid")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 30 {
		t.Fatalf("corpus has %d cases, want at least 30", len(dirs))
	}
	for _, d := range dirs {
		t.Run(d.Name(), func(t *testing.T) {
			dir := filepath.Join("testdata/invalid", d.Name())
			repo := Load(os.DirFS(dir), LoadOptions{})
			got := problemLines(repo.Problems)
			if got == "" {
				t.Fatal("no problem reported")
			}
			golden := filepath.Join(dir, "want.txt")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./spec -run TestInvalidCorpus -update)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			for _, p := range repo.Problems {
				if p.File == "" || (p.Line == 0 && !strings.Contains(d.Name(), "empty") && !strings.Contains(d.Name(), "large") && !strings.Contains(d.Name(), "symlink")) {
					t.Errorf("problem without file and line: %q", p.Error())
				}
			}
		})
	}
}

// TestBadFileDisturbsNothingElse loads each invalid case with one more,
// valid certificate beside it: the good one must load.
func TestBadFileDisturbsNothingElse(t *testing.T) {
	dirs, err := os.ReadDir("testdata/invalid")
	if err != nil {
		t.Fatal(err)
	}
	good := `apiVersion: certops.dev/v1alpha1
kind: Certificate
metadata:
  name: good
  namespace: api
spec:
  dnsNames: [good.example.com]
  issuerRef:
    name: ca
`
	for _, d := range dirs {
		name := d.Name()
		if strings.HasPrefix(name, "policy-") || strings.HasPrefix(name, "config-") ||
			strings.HasPrefix(name, "symlink") || strings.Contains(name, "issuer") {
			continue // these cases hold every certificate by design
		}
		t.Run(name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			root := filepath.Join("testdata/invalid", name)
			err := fs.WalkDir(os.DirFS(root), ".", func(p string, de fs.DirEntry, err error) error {
				if err != nil || de.IsDir() || p == "want.txt" {
					return err
				}
				data, err := os.ReadFile(filepath.Join(root, p))
				fsys[p] = &fstest.MapFile{Data: data}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			fsys["certificates/zz/good.yaml"] = &fstest.MapFile{Data: []byte(good)}
			repo := Load(fsys, LoadOptions{})
			if repo.Certificate("api/good") == nil {
				t.Errorf("good certificate not loaded; problems:\n%s", problemLines(repo.Problems))
			}
		})
	}
}

func TestExamplesValidate(t *testing.T) {
	dirs, err := filepath.Glob("../examples/*/certops.yaml")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, f := range dirs {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			repo := Load(os.DirFS(dir), LoadOptions{})
			if len(repo.Problems) > 0 {
				t.Errorf("example does not validate:\n%s", problemLines(repo.Problems))
			}
			if len(repo.Certificates) == 0 {
				t.Error("example loads no certificate")
			}
		})
	}
}

func TestCertManagerManifestsLoadUnchanged(t *testing.T) {
	repo := Load(os.DirFS("testdata/cert-manager"), LoadOptions{})
	if len(repo.Problems) > 0 {
		t.Fatalf("cert-manager manifests do not load:\n%s", problemLines(repo.Problems))
	}
	c := repo.Certificate("sandbox/example-com")
	if c == nil {
		t.Fatalf("certificate sandbox/example-com missing; have %d certificates", len(repo.Certificates))
	}
	want := []string{"example.com", "www.example.com"}
	if diff := cmp.Diff(want, c.Spec.DNSNames); diff != "" {
		t.Errorf("dnsNames (-want +got):\n%s", diff)
	}
	wantOther := []OtherName{{OID: "1.3.6.1.4.1.311.20.2.3", UTF8Value: "upn@example.local"}}
	if diff := cmp.Diff(wantOther, c.Spec.OtherNames); diff != "" {
		t.Errorf("otherNames (-want +got):\n%s", diff)
	}
	if c.Spec.SecretName != "example-com-tls" || c.Spec.PrivateKey.Algorithm != RSA || c.Spec.PrivateKey.Size != 2048 {
		t.Errorf("got secretName %q key %s/%d, want example-com-tls RSA/2048", c.Spec.SecretName, c.Spec.PrivateKey.Algorithm, c.Spec.PrivateKey.Size)
	}
	for _, name := range []string{"ca-issuer", "letsencrypt-staging", "selfsigned-issuer"} {
		if repo.Issuers[name] == nil {
			t.Errorf("issuer %s missing", name)
		}
	}
}

// TestKeyOfLoadedCertificateAllocatesNothing: a pass looks a certificate's
// key up several times; for a loaded certificate that costs no allocation,
// and a certificate changed after loading is still named by its fields.
func TestKeyOfLoadedCertificateAllocatesNothing(t *testing.T) {
	fsys := fstest.MapFS{
		"certificates/a.yaml": {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Certificate\nmetadata: {name: web, namespace: prod}\nspec: {dnsNames: [web.example.com], issuerRef: {name: ca}}\n" +
			"---\napiVersion: certops.dev/v1alpha1\nkind: Certificate\nmetadata: {name: api}\nspec: {dnsNames: [api.example.com], issuerRef: {name: ca}}\n")},
		"issuers/ca.yaml": {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: ca}\nspec: {selfSigned: {}}\n")},
	}
	repo := Load(fsys, LoadOptions{})
	if len(repo.Problems) > 0 || len(repo.Certificates) != 2 {
		t.Fatalf("load: %d certificates, problems %v", len(repo.Certificates), repo.Problems)
	}
	for _, want := range []string{"default/api", "prod/web"} {
		c := repo.Certificate(want)
		if c == nil || c.Key() != want {
			t.Fatalf("Certificate(%q) = %v", want, c)
		}
		if n := testing.AllocsPerRun(100, func() { _ = repo.Certificate(want).Key() }); n != 0 {
			t.Errorf("%s: %v allocations per lookup, want 0", want, n)
		}
	}
	c := repo.Certificate("prod/web")
	c.Metadata.Name = "www"
	if got := c.Key(); got != "prod/www" {
		t.Errorf("renamed: Key() = %q, want prod/www", got)
	}
	c.Metadata.Namespace = ""
	if got := c.Key(); got != "default/www" {
		t.Errorf("moved to the default namespace: Key() = %q, want default/www", got)
	}
	var built Certificate
	built.Metadata.Name, built.Metadata.Namespace = "x", "y"
	if got := built.Key(); got != "y/x" {
		t.Errorf("built by hand: Key() = %q, want y/x", got)
	}
}

// TestResolvedTargets: absent targets mean the default clusters, an empty
// list means Git only, namespaces fan out, and resolving allocates only
// the result.
func TestResolvedTargets(t *testing.T) {
	cfg := &Config{}
	cfg.Spec.Clusters = []Cluster{{Name: "main", Default: true}, {Name: "edge"}, {Name: "dr", Default: true}}
	c := &Certificate{}
	c.Metadata.Name, c.Metadata.Namespace = "web", "prod"
	c.Spec.SecretName = "web-tls"
	want := []ResolvedTarget{{Cluster: "main", Namespace: "prod", SecretName: "web-tls"}, {Cluster: "dr", Namespace: "prod", SecretName: "web-tls"}}
	if diff := cmp.Diff(want, c.ResolvedTargets(cfg)); diff != "" {
		t.Errorf("default clusters (-want +got):\n%s", diff)
	}
	if n := testing.AllocsPerRun(100, func() { _ = c.ResolvedTargets(cfg) }); n > 2 {
		t.Errorf("default clusters: %v allocations, want at most 2 (the result growing to two)", n)
	}
	c.Spec.Targets = []Target{}
	if got := c.ResolvedTargets(cfg); got != nil {
		t.Errorf("Git only: %v, want none", got)
	}
	if n := testing.AllocsPerRun(100, func() { _ = c.ResolvedTargets(cfg) }); n != 0 {
		t.Errorf("Git only: %v allocations, want 0", n)
	}
	c.Spec.Targets = []Target{{Cluster: "edge"}, {Cluster: "main", Namespaces: []string{"a", "b"}, SecretName: "x", TakeOver: true}}
	want = []ResolvedTarget{{Cluster: "edge", Namespace: "prod", SecretName: "web-tls"},
		{Cluster: "main", Namespace: "a", SecretName: "x", TakeOver: true}, {Cluster: "main", Namespace: "b", SecretName: "x", TakeOver: true}}
	if diff := cmp.Diff(want, c.ResolvedTargets(cfg)); diff != "" {
		t.Errorf("named targets (-want +got):\n%s", diff)
	}
	c.Spec.Targets = []Target{{Cluster: "edge"}}
	if n := testing.AllocsPerRun(100, func() { _ = c.ResolvedTargets(cfg) }); n != 1 {
		t.Errorf("one target: %v allocations, want 1", n)
	}
}
