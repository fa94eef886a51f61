package kube_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"certops.dev/certops/reconciler/kube"
)

// TestEventsOnSecret records Events as examples/deploy's service account:
// on an existing Secret (with its UID, as `kubectl describe` looks them
// up) and on one not there yet; outside the Roles it is forbidden.
func TestEventsOnSecret(t *testing.T) {
	requireE2E(t)
	ctx := context.Background()
	a := startCluster(t)
	applyManifests(t, a.admin, filepath.Join("..", "..", "examples", "deploy"), "namespace.yaml", "serviceaccount.yaml", "rbac.yaml")
	a.namespaces(t, "web", "elsewhere")
	sa := rest.CopyConfig(a.Config)
	sa.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:certops:certops"}
	kc, err := kube.NewCluster("a", kube.ClusterConfig{REST: sa, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Apply(ctx, certSecrets("web", "web")); err != nil {
		t.Fatal(err)
	}
	s := a.secret(t, "web", "web-tls")
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, ev := range []kube.Event{
		{Namespace: "web", SecretName: "web-tls", Type: corev1.EventTypeNormal, Reason: "Issued", Action: "Issue", Message: "issued web/web: serial 1f", Time: at},
		{Namespace: "web", SecretName: "api-tls", Type: corev1.EventTypeWarning, Reason: "IssuanceFailed", Action: "Issue", Message: "issuing web/api failed", Time: at},
	} {
		if err := kc.RecordEvent(ctx, ev); err != nil {
			t.Fatalf("record %s as the service account: %v", ev.Reason, err)
		}
	}
	list, err := a.admin.CoreV1().Events("web").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(s.UID)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Reason != "Issued" || list.Items[0].ReportingController != "certops" ||
		list.Items[0].Source.Component != "certops" || list.Items[0].Type != corev1.EventTypeNormal {
		t.Errorf("events on the Secret's UID: %+v; want one Normal Issued from certops", list.Items)
	}
	list, err = a.admin.CoreV1().Events("web").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=api-tls"})
	if err != nil || len(list.Items) != 1 || list.Items[0].Type != corev1.EventTypeWarning {
		t.Errorf("event on a Secret not applied yet: %+v, %v; want one Warning", list, err)
	}
	err = kc.RecordEvent(ctx, kube.Event{Namespace: "elsewhere", SecretName: "x", Type: corev1.EventTypeNormal, Reason: "Issued", Message: "m"})
	if !errors.Is(err, kube.ErrForbidden) {
		t.Errorf("event outside the Roles' namespaces: %v; want ErrForbidden", err)
	}
}
