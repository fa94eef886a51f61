package reconciler

import (
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/spec"
)

func TestTemplateForOtherNames(t *testing.T) {
	c := &spec.Certificate{Spec: spec.CertificateSpec{
		DNSNames:   []string{"web.example.com"},
		OtherNames: []spec.OtherName{{OID: "1.3.6.1.4.1.311.20.2.3", UTF8Value: "web@example.com"}, {OID: "1.2.3.4", UTF8Value: "x"}},
	}}
	got := templateFor(c).OtherNames
	want := []issuer.OtherName{{OID: issuer.OIDUPN, Value: "web@example.com"}, {OID: []int{1, 2, 3, 4}, Value: "x"}}
	if d := gocmp.Diff(want, got); d != "" {
		t.Errorf("otherNames (-want +got):\n%s", d)
	}
}
