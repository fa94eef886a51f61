package kube

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrUnreachable: the API server did not answer (refused, timed out,
	// DNS, TLS). Retry later.
	ErrUnreachable = errors.New("cluster unreachable")
	// ErrForbidden: the API server refused certops' identity the request
	// (RBAC). Retrying helps only after the permissions change.
	ErrForbidden = errors.New("forbidden")
	// ErrNamespaceNotAllowed: the target namespace is not among the ones the
	// cluster's configuration lets certops write to. No request was made.
	ErrNamespaceNotAllowed = errors.New("namespace not allowed for this cluster")
	// ErrConflict: the Secret is managed by someone else; see ConflictError.
	ErrConflict = errors.New("secret managed by another manager")
	// ErrInvalid: a Desired or a configuration is malformed.
	ErrInvalid = errors.New("invalid")
)

// ConflictError says why certops left an existing Secret alone.
type ConflictError struct {
	Namespace, Name string
	// Reason is "unlabelled" (no certops label), "managed-fields" (another
	// field manager owns its data) or "apply-conflict" (the server refused
	// the apply for fields another manager owns).
	Reason string
	// Managers are the other field managers found on the Secret.
	Managers []string
}

func (e *ConflictError) Error() string {
	var why string
	switch e.Reason {
	case "unlabelled":
		why = "it exists without the label app.kubernetes.io/managed-by=certops"
	case "managed-fields":
		why = "its data is owned by another field manager"
	default:
		why = "the server reports fields owned by another field manager"
	}
	msg := fmt.Sprintf("kube: secret %s/%s left alone: %s", e.Namespace, e.Name, why)
	if len(e.Managers) > 0 {
		msg += " (managers: " + strings.Join(e.Managers, ", ") + ")"
	}
	return msg + "; set takeOver: true on the target to manage it"
}

// Is makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ClusterError is a failure of one request to one cluster.
type ClusterError struct {
	Cluster string
	// Op names the request: "list secrets", "get secret", "apply secret",
	// "delete secret".
	Op        string
	Namespace string
	Name      string
	Err       error
}

func (e *ClusterError) Error() string {
	where := "namespace " + e.Namespace
	if e.Name != "" {
		where = "secret " + e.Namespace + "/" + e.Name
	}
	if e.Namespace == "" {
		where = "all namespaces"
	}
	return fmt.Sprintf("kube: cluster %s: %s %s: %s", e.Cluster, e.Op, where, describe(e.Err))
}

func (e *ClusterError) Unwrap() []error {
	var kinds []error
	switch {
	case isUnreachable(e.Err):
		kinds = append(kinds, ErrUnreachable)
	case apierrors.IsForbidden(e.Err), apierrors.IsUnauthorized(e.Err):
		kinds = append(kinds, ErrForbidden)
	}
	return append(kinds, e.Err)
}

// describe prefixes the cause with its kind, so a log line says at once
// whether to look at the network or at RBAC.
func describe(err error) string {
	switch {
	case isUnreachable(err):
		return "unreachable: " + err.Error()
	case apierrors.IsForbidden(err):
		return "forbidden by the cluster's RBAC: " + err.Error()
	case apierrors.IsUnauthorized(err):
		return "credentials rejected: " + err.Error()
	}
	return err.Error()
}

// isUnreachable reports errors of the transport, not of the API: nothing
// answered, or not in time.
func isUnreachable(err error) bool {
	if err == nil {
		return false
	}
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &opErr), errors.As(err, &dnsErr):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return true
	case errors.As(err, &netErr) && netErr.Timeout():
		return true
	case apierrors.IsServerTimeout(err), apierrors.IsServiceUnavailable(err), apierrors.IsTimeout(err):
		return true
	}
	// client-go wraps some transport failures in *url.Error and some in
	// plain strings (for example after its own retries).
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "no such host") ||
		strings.Contains(s, "i/o timeout") || strings.Contains(s, "EOF")
}
