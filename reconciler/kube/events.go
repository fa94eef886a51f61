package kube

import (
	"context"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Event is a Kubernetes Event about one of certops' Secrets: what `kubectl
// describe secret` and `kubectl events --for secret/NAME` show. It is a
// core/v1 Event, as cert-manager's record.EventRecorder writes, so it shows
// in both the core and the events.k8s.io API.
type Event struct {
	Namespace, SecretName string
	// Type is corev1.EventTypeNormal or corev1.EventTypeWarning.
	Type string
	// Reason is Flux-style and CamelCase: Issued, Renewed, Reissued,
	// IssuanceFailed.
	Reason string
	// Action is what certops did or tried (Issue, Renew, Reissue).
	Action  string
	Message string
	Time    time.Time
}

// ReportingController names certops in every Event it writes.
const ReportingController = "certops"

// maxEventMessage is events.k8s.io/v1's limit on note (1 kB); core/v1
// Events readable through that API must keep to it.
const maxEventMessage = 1024

// RecordEvent creates ev in the cluster, regarding the Secret (with its UID
// when it exists, so `kubectl describe` finds it). It needs `create` on
// events and `get` on secrets in the namespace.
func (c *Cluster) RecordEvent(ctx context.Context, ev Event) error {
	if !c.Allows(ev.Namespace) {
		return fmt.Errorf("kube: cluster %s: event on secret %s/%s: %w", c.name, ev.Namespace, ev.SecretName, ErrNamespaceNotAllowed)
	}
	ref := corev1.ObjectReference{Kind: "Secret", APIVersion: "v1", Namespace: ev.Namespace, Name: ev.SecretName}
	s, err := c.client.CoreV1().Secrets(ev.Namespace).Get(ctx, ev.SecretName, metav1.GetOptions{})
	switch {
	case err == nil:
		ref.UID, ref.ResourceVersion = s.UID, s.ResourceVersion
	case !apierrors.IsNotFound(err):
		return &ClusterError{Cluster: c.name, Op: "get secret", Namespace: ev.Namespace, Name: ev.SecretName, Err: err}
	}
	t := ev.Time
	if t.IsZero() {
		t = time.Now()
	}
	msg := ev.Message
	if len(msg) > maxEventMessage {
		msg = msg[:maxEventMessage-3] + "..."
	}
	host, _ := os.Hostname()
	e := &corev1.Event{
		// client-go's recorder names events <object>.<hex nanoseconds>.
		ObjectMeta:          metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", ev.SecretName, t.UnixNano()), Namespace: ev.Namespace},
		InvolvedObject:      ref,
		Type:                ev.Type,
		Reason:              ev.Reason,
		Action:              ev.Action,
		Message:             msg,
		Source:              corev1.EventSource{Component: ReportingController, Host: host},
		FirstTimestamp:      metav1.NewTime(t),
		LastTimestamp:       metav1.NewTime(t),
		Count:               1,
		ReportingController: ReportingController,
		ReportingInstance:   host,
	}
	if _, err := c.client.CoreV1().Events(ev.Namespace).Create(ctx, e, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return &ClusterError{Cluster: c.name, Op: "create event", Namespace: ev.Namespace, Name: e.Name, Err: err}
	}
	return nil
}
