package kube

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"certops.dev/certops/reconciler"
)

// SecretFor is the Secret a reconciler pass wants for one target (d), as
// Apply takes it. certops' own labels are left out of Labels: Apply sets
// them itself, from CertName (the certificate's name, a label value).
func SecretFor(d reconciler.Desired) Desired {
	var labels map[string]string // nil when there are none: one per Secret
	for k, v := range d.Labels {
		if k != LabelManagedBy && k != LabelCertificate {
			if labels == nil {
				labels = make(map[string]string, len(d.Labels))
			}
			labels[k] = v
		}
	}
	_, certName, _ := strings.Cut(d.Cert, "/")
	return Desired{Namespace: d.Target.Namespace, Name: d.Target.SecretName, Type: corev1.SecretType(d.Type),
		Data: d.Data, Load: d.Load, Source: d.Source,
		Labels: labels, Annotations: d.Annotations, CertName: certName, TakeOver: d.Target.TakeOver}
}

// DesiredMap returns an empty Pass.Desired with room, in each cluster's
// list, for that cluster's Secrets among ds: a pass over 10,000
// certificates then builds each list in one allocation.
func DesiredMap(ds []reconciler.Desired) map[string][]Desired {
	n := map[string]int{}
	for _, d := range ds {
		n[d.Target.Cluster]++
	}
	out := make(map[string][]Desired, len(n))
	for cl, k := range n {
		out[cl] = make([]Desired, 0, k)
	}
	return out
}

// AddTo counts a fleet pass into a reconciler apply report: created,
// updated and deleted Secrets as applied, and every failure, each naming its
// cluster. A cluster's own error is added only when none of its results
// carried one, which it would repeat.
func (r FleetReport) AddTo(rep *reconciler.ApplyReport) {
	for name, out := range r.Clusters {
		before := len(rep.Errors)
		for _, cr := range []Report{out.Apply, out.Prune} {
			rep.Applied += cr.Count(Created) + cr.Count(Updated) + cr.Count(Deleted)
			rep.Unchanged += cr.Count(Unchanged)
			rep.Skipped += cr.Count(Skipped)
			for _, res := range cr.Results {
				if res.Err != nil {
					rep.Errors = append(rep.Errors, fmt.Errorf("cluster %s: %w", name, res.Err))
				}
			}
		}
		if out.Err != nil && len(rep.Errors) == before {
			rep.Errors = append(rep.Errors, out.Err)
		}
	}
}
