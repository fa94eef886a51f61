package reconciler

import (
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"certops.dev/certops/spec"
)

// Domain reasons, beside Flux's generic ones (Succeeded, Failed,
// Progressing, ProgressingWithRetry).
const (
	ReasonIssued       = "Issued"       // issued or renewed in the last pass
	ReasonInvalidSpec  = "InvalidSpec"  // the spec has problems and is held
	ReasonIssuerFailed = "IssuerFailed" // the issuer refused; waiting for a spec change
	ReasonBackoff      = "Backoff"      // failed; retried at RetryAt
)

// CertificateStatus is one certificate's state as the daemon sees it, with
// Flux-style conditions.
type CertificateStatus struct {
	CertResult
	Conditions []metav1.Condition `json:"conditions"`
}

// Status is the daemon's view for the status API and `certops status`.
type Status struct {
	LastPass     time.Time           `json:"lastPass,omitzero"`
	Commit       string              `json:"commit,omitempty"`
	Pushed       string              `json:"pushed,omitempty"`
	NextDue      time.Time           `json:"nextDue,omitzero"`
	Error        string              `json:"error,omitempty"`
	Problems     []spec.Problem      `json:"problems,omitempty"`
	Certificates []CertificateStatus `json:"certificates"`
}

// Status derives the status from the latest pass.
func (r *Reconciler) Status() Status { return StatusOf(r.Last()) }

// StatusOf derives the status from a report (nil: nothing yet).
func StatusOf(rep *Report) Status {
	if rep == nil {
		return Status{Certificates: []CertificateStatus{}}
	}
	st := Status{LastPass: rep.Started, Commit: rep.Commit, Pushed: rep.Pushed, NextDue: rep.NextDue,
		Error: rep.Error, Problems: rep.Problems, Certificates: make([]CertificateStatus, 0, len(rep.Results))}
	at := metav1.NewTime(rep.Started)
	cond := func(typ string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: at}
	}
	for _, c := range rep.Results {
		cs := CertificateStatus{CertResult: c}
		switch {
		case c.Error != "" && c.RetryAt.IsZero():
			cs.Conditions = []metav1.Condition{
				cond(meta.ReadyCondition, metav1.ConditionFalse, ReasonIssuerFailed, c.Error),
				cond(meta.StalledCondition, metav1.ConditionTrue, ReasonIssuerFailed, "retried after a change of the spec or the issuer"),
			}
		case c.Error != "":
			cs.Conditions = []metav1.Condition{
				cond(meta.ReadyCondition, metav1.ConditionFalse, ReasonBackoff, c.Error),
				cond(meta.ReconcilingCondition, metav1.ConditionTrue, meta.ProgressingWithRetryReason, "retry at "+c.RetryAt.UTC().Format(time.RFC3339)),
			}
		case c.Action != spec.ActionNone:
			cs.Conditions = []metav1.Condition{cond(meta.ReadyCondition, metav1.ConditionTrue, ReasonIssued,
				string(c.Action)+" ("+string(c.Reason)+"), serial "+c.Serial)}
		default:
			cs.Conditions = []metav1.Condition{cond(meta.ReadyCondition, metav1.ConditionTrue, meta.SucceededReason,
				"valid until "+c.NotAfter.UTC().Format(time.RFC3339))}
		}
		st.Certificates = append(st.Certificates, cs)
	}
	return st
}
