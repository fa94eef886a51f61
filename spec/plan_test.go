package spec

import (
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func loadOne(t *testing.T, certYAML string) *Certificate {
	t.Helper()
	repo := Load(fstest.MapFS{
		"issuers/ca.yaml":     {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: ca}\nspec: {selfSigned: {}}\n")},
		"certificates/c.yaml": {Data: []byte(certYAML)},
	}, LoadOptions{})
	if len(repo.Problems) > 0 || len(repo.Certificates) != 1 {
		t.Fatalf("got %d certificates, problems:\n%s", len(repo.Certificates), problemLines(repo.Problems))
	}
	return repo.Certificates[0]
}

const baseCert = `apiVersion: certops.dev/v1alpha1
kind: Certificate
metadata:
  name: web
spec:
  dnsNames: [b.example.com, a.example.com]
  issuerRef: {name: ca}
`

// TestSpecHashGolden pins the hash of a fixed spec: a change here re-issues
// every certificate in every repository, so it must be deliberate.
func TestSpecHashGolden(t *testing.T) {
	got := loadOne(t, baseCert).SpecHash()
	data, err := os.ReadFile("testdata/spec-hash.golden")
	if *update {
		if err := os.WriteFile("testdata/spec-hash.golden", []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(data)) != got {
		t.Errorf("spec hash = %s, want %s (golden)", got, strings.TrimSpace(string(data)))
	}
}

func TestSpecHashIgnoresCosmetics(t *testing.T) {
	base := loadOne(t, baseCert).SpecHash()
	same := map[string]string{
		"comment and order":    "# a comment\napiVersion: certops.dev/v1alpha1\nkind: Certificate\nmetadata:\n  name: web\nspec:\n  issuerRef: {name: ca}\n  dnsNames:\n    - a.example.com # first\n    - b.example.com\n",
		"targets and template": baseCert + "  secretTemplate: {labels: {team: a}}\n  renewBefore: 100h\n  privateKey: {rotationPolicy: Never}\n",
		"explicit defaults":    baseCert + "  duration: 2160h\n  privateKey: {algorithm: RSA, size: 2048, encoding: PKCS1}\n  usages: [key encipherment, digital signature]\n",
	}
	for name, y := range same {
		if got := loadOne(t, y).SpecHash(); got != base {
			t.Errorf("%s: hash changed: got %s, want %s", name, got, base)
		}
	}
	differ := map[string]string{
		"dns name": strings.Replace(baseCert, "b.example.com", "c.example.com", 1),
		"duration": baseCert + "  duration: 720h\n",
		"key":      baseCert + "  privateKey: {algorithm: ECDSA}\n",
		"usages":   baseCert + "  usages: [digital signature]\n",
		"isCA":     baseCert + "  isCA: true\n",
		"encoding": baseCert + "  privateKey: {encoding: PKCS8}\n",
	}
	for name, y := range differ {
		if got := loadOne(t, y).SpecHash(); got == base {
			t.Errorf("%s: hash did not change (%s)", name, got)
		}
	}
}

func TestDecide(t *testing.T) {
	c := loadOne(t, baseCert)
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(90 * 24 * time.Hour)
	fresh := func(mod func(o *Observed)) *Observed {
		o := &Observed{NotBefore: nb, NotAfter: na, Annotations: NewAnnotations(map[string]string{
			AnnotationIssuer: "ca", AnnotationSpecHash: c.SpecHash()})}
		if mod != nil {
			mod(o)
		}
		return o
	}
	renewAt := nb.Add(60 * 24 * time.Hour) // 2/3 of 90 days
	tests := []struct {
		name   string
		o      *Observed
		now    time.Time
		action Action
		reason Reason
	}{
		{"missing", nil, nb, ActionIssue, ReasonDoesNotExist},
		{"fresh", fresh(nil), nb.Add(time.Hour), ActionNone, ReasonUpToDate},
		{"just before renewal", fresh(nil), renewAt.Add(-time.Second), ActionNone, ReasonUpToDate},
		{"renewal due", fresh(nil), renewAt, ActionRenew, ReasonRenewing},
		{"expired", fresh(nil), na, ActionRenew, ReasonExpired},
		{"issuer changed", fresh(withAnnotation(AnnotationIssuer, "old")), nb, ActionReissue, ReasonIssuerChanged},
		{"spec changed", fresh(withAnnotation(AnnotationSpecHash, "sha256:x")), nb, ActionReissue, ReasonSpecChanged},
		{"earlier renew-at (ARI)", fresh(func(o *Observed) { o.RenewAt = nb.Add(time.Hour) }), nb.Add(2 * time.Hour), ActionRenew, ReasonRenewing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(c, tt.o, tt.now)
			if d.Action != tt.action || d.Reason != tt.reason {
				t.Errorf("got %s/%s, want %s/%s", d.Action, d.Reason, tt.action, tt.reason)
			}
		})
	}
	forced := loadOne(t, strings.Replace(baseCert, "  name: web\n", "  name: web\n  annotations: {certops.dev/renew: \"2026-02-01\"}\n", 1))
	if d := Decide(forced, fresh(withAnnotation(AnnotationSpecHash, forced.SpecHash())), nb); d.Reason != ReasonManuallyTriggered {
		t.Errorf("forced renewal: got %s, want %s", d.Reason, ReasonManuallyTriggered)
	}
}

func TestRenewBeforeFor(t *testing.T) {
	p := int32(25)
	tests := []struct {
		name string
		s    CertificateSpec
		life time.Duration
		want time.Duration
	}{
		{"default third", CertificateSpec{}, 90 * time.Hour, 30 * time.Hour},
		{"renewBefore", CertificateSpec{RenewBefore: &Duration{10 * time.Hour}}, 90 * time.Hour, 10 * time.Hour},
		{"renewBefore longer than life", CertificateSpec{RenewBefore: &Duration{100 * time.Hour}}, 90 * time.Hour, 30 * time.Hour},
		{"percentage", CertificateSpec{RenewBeforePercentage: &p}, 100 * time.Hour, 25 * time.Hour},
	}
	for _, tt := range tests {
		if got := tt.s.RenewBeforeFor(tt.life); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestMatchDNSName(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*.a.example.com", "x.a.example.com", true},
		{"*.a.example.com", "*.a.example.com", true},
		{"*.a.example.com", "x.y.a.example.com", false},
		{"*.a.example.com", "a.example.com", false},
		{"*.a.example.com", "xa.example.com", false},
		{"a.example.com", "a.example.com", true},
		{"a.example.com", "b.a.example.com", false},
		{"*.xn--bcher-kva.example", "www.bücher.example", true},
		{"*.bücher.example", "www.xn--bcher-kva.example", true},
		{"*.bücher.example", "x.y.bücher.example", false},
	}
	for _, tt := range tests {
		if got := MatchDNSName(tt.pattern, tt.name); got != tt.want {
			t.Errorf("MatchDNSName(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestNextWindow(t *testing.T) {
	w := []RenewalWindow{{Days: []string{"Mon"}, Start: "02:00", End: "04:00", TimeZone: "UTC"}}
	sat := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) // a Saturday
	got, ok := NextWindow(w, sat)
	want := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)
	if !ok || !got.Equal(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	inside := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	if got, _ := NextWindow(w, inside); !got.Equal(inside) {
		t.Errorf("inside window: got %v, want %v", got, inside)
	}
}

func TestExternalPolicyCannotBeWidened(t *testing.T) {
	ext, problems := LoadPolicy("policy.yaml", []byte(`apiVersion: certops.dev/v1alpha1
kind: Policy
spec:
  rules:
    - paths: ["**"]
      dnsNames: ["*.example.com"]
`))
	if len(problems) > 0 {
		t.Fatal(problemLines(problems))
	}
	fsys := fstest.MapFS{
		"certops.yaml":         {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Config\nspec:\n  policy:\n    rules:\n      - paths: [\"**\"]\n        dnsNames: [\"*.other.org\", \"*.example.com\"]\n")},
		"issuers/ca.yaml":      {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: ca}\nspec: {selfSigned: {}}\n")},
		"certificates/ok.yaml": {Data: []byte(strings.Replace(strings.Replace(baseCert, "web", "ok", 1), "[b.example.com, a.example.com]", "[www.example.com]", 1))},
		"certificates/no.yaml": {Data: []byte(strings.Replace(strings.Replace(baseCert, "web", "no", 1), "[b.example.com, a.example.com]", "[www.other.org]", 1))},
	}
	repo := Load(fsys, LoadOptions{ExternalPolicy: ext})
	if repo.Certificate("default/ok") == nil {
		t.Errorf("ok certificate refused: %s", problemLines(repo.Problems))
	}
	if repo.Certificate("default/no") != nil {
		t.Error("the repository's policy widened the daemon's")
	}
	if !strings.Contains(problemLines(repo.Problems), "daemon policy") {
		t.Errorf("problems do not name the daemon policy:\n%s", problemLines(repo.Problems))
	}
}

func TestPlanFromObservedFiles(t *testing.T) {
	c := loadOne(t, baseCert)
	secret := `apiVersion: v1
kind: Secret
metadata:
  name: web
  namespace: default
  annotations:
    certops.dev/certificate: default/web
    certops.dev/issuer: ca
    certops.dev/spec-hash: ` + c.SpecHash() + `
    certops.dev/not-before: "2026-01-01T00:00:00Z"
    certops.dev/not-after: "2026-04-01T00:00:00Z"
type: kubernetes.io/tls
stringData:
  tls.crt: ENC[AES256_GCM,data:xxx,type:str]
sops:
  mac: ENC[AES256_GCM,data:xxx,type:str]
`
	orphan := strings.NewReplacer("default/web", "default/gone", "name: web", "name: gone").Replace(secret)
	// A file laid out by another tool, payload first, is read whole.
	reordered := "stringData:\n  tls.crt: x\n" + strings.Replace(secret, "stringData:\n  tls.crt: ENC[AES256_GCM,data:xxx,type:str]\n", "", 1)
	if o, err := ReadObserved("r.yaml", []byte(reordered)); err != nil || o.Certificate() != "default/web" {
		t.Fatalf("reordered file: %v, %+v", err, o)
	}
	fsys := fstest.MapFS{
		"issuers/ca.yaml":           {Data: []byte("apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: ca}\nspec: {selfSigned: {}}\n")},
		"certificates/c.yaml":       {Data: []byte(baseCert)},
		"secrets/default/web.yaml":  {Data: []byte(secret)},
		"secrets/default/gone.yaml": {Data: []byte(orphan)},
	}
	repo := Load(fsys, LoadOptions{})
	entries, problems := Plan(fsys, repo, time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC))
	if len(problems) > 0 {
		t.Fatal(problemLines(problems))
	}
	got := map[string]Action{}
	for _, e := range entries {
		got[e.Name] = e.Decision.Action
	}
	if got["default/web"] != ActionNone || got["default/gone"] != ActionRemove || len(got) != 2 {
		t.Errorf("plan = %v, want web none, gone remove", got)
	}
}

// withAnnotation sets annotation k of an Observed to v.
func withAnnotation(k, v string) func(*Observed) {
	return func(o *Observed) {
		m := o.Annotations.Map()
		m[k] = v
		o.Annotations = NewAnnotations(m)
	}
}
