package kube

import (
	"errors"
	"testing"

	"certops.dev/certops/reconciler"
	"certops.dev/certops/spec"
)

func TestSecretForLeavesCertopsLabelsToApply(t *testing.T) {
	d := SecretFor(reconciler.Desired{Cert: "web/shop", Type: "kubernetes.io/tls", Source: "blob",
		Target: spec.ResolvedTarget{Cluster: "prod", Namespace: "web", SecretName: "shop-tls", TakeOver: true},
		Labels: map[string]string{LabelManagedBy: "certops", LabelCertificate: "shop", "team": "a"}})
	if d.Namespace != "web" || d.Name != "shop-tls" || d.CertName != "shop" || !d.TakeOver || d.Source != "blob" || d.Type != "kubernetes.io/tls" {
		t.Errorf("SecretFor = %+v", d)
	}
	if len(d.Labels) != 1 || d.Labels["team"] != "a" {
		t.Errorf("labels = %v, want only the template's", d.Labels)
	}
}

func TestAddToCountsAndDoesNotRepeatErrors(t *testing.T) {
	failed := errors.New("boom")
	fr := FleetReport{Clusters: map[string]ClusterOutcome{
		"a": {Apply: Report{Results: []Result{{Outcome: Created}, {Outcome: Unchanged}, {Outcome: Failed, Err: failed}}},
			Prune: Report{Results: []Result{{Outcome: Deleted}}}, Err: failed},
		"b": {Err: errors.New("unreachable")},
	}}
	var rep reconciler.ApplyReport
	fr.AddTo(&rep)
	if rep.Applied != 2 || rep.Unchanged != 1 || rep.Skipped != 0 {
		t.Errorf("counts %+v", rep)
	}
	if len(rep.Errors) != 2 {
		t.Errorf("errors %v, want cluster a's result once and cluster b's own error", rep.Errors)
	}
}
