package kube

import (
	"context"
	"errors"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
)

// Deleted is the outcome of a Secret removed by Prune.
const Deleted Outcome = "deleted"

// Prune deletes the Secrets labelled app.kubernetes.io/managed-by=certops
// that are not in keep — their certificate or its target is gone — and
// nothing else. It does nothing unless the cluster's configuration enables
// pruning. It looks in the cluster's allowed namespaces, or in all
// namespaces when any is allowed.
//
// Each delete is conditional on the UID and resourceVersion just listed, so
// a Secret that changed hands in between is not deleted.
func (c *Cluster) Prune(ctx context.Context, keep map[Key]bool) (Report, error) {
	rep := Report{Cluster: c.name}
	if !c.cfg.Prune {
		return rep, nil
	}
	var candidates []owned
	var errs []error
	namespaces := []string{metav1.NamespaceAll}
	if c.allowed != nil {
		namespaces = slices.Sorted(maps.Keys(c.allowed))
	}
	for _, ns := range namespaces {
		found, err := c.listOwned(ctx, ns)
		if err != nil {
			errs = append(errs, &ClusterError{Cluster: c.name, Op: "list secrets", Namespace: ns, Err: err})
			continue
		}
		candidates = append(candidates, found...)
	}
	for _, s := range candidates {
		key := s.key
		// The label selector already matched; the certificate label is a
		// second witness that certops wrote it.
		if keep[key] || s.managedBy != LabelManagedByValue || s.cert == "" || !c.Allows(key.Namespace) {
			continue
		}
		uid, rv := s.uid, s.rv
		err := c.client.CoreV1().Secrets(key.Namespace).Delete(ctx, key.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
		})
		rep.Writes++
		switch {
		case err == nil:
			rep.Results = append(rep.Results, Result{Key: key, Outcome: Deleted})
			c.log.Info("secret pruned", "namespace", key.Namespace, "secret", key.Name, "cert", s.cert)
		case apierrors.IsNotFound(err):
			// Already gone: the goal holds.
		case apierrors.IsConflict(err):
			// Changed since the list: look again next pass.
			rep.Results = append(rep.Results, Result{Key: key, Outcome: Unchanged})
		default:
			cerr := &ClusterError{Cluster: c.name, Op: "delete secret", Namespace: key.Namespace, Name: key.Name, Err: err}
			rep.Results = append(rep.Results, Result{Key: key, Outcome: Failed, Err: cerr})
			errs = append(errs, cerr)
		}
	}
	return rep, errors.Join(errs...)
}

// owned is what Prune reads of a Secret that carries certops' label: the
// listed metadata also holds every annotation and the managed fields, about
// 2 KiB a Secret, which a cluster of 10,000 would hold at once.
type owned struct {
	key             Key
	uid             types.UID
	rv              string
	managedBy, cert string // labels
}

func ownedOf(m *metav1.ObjectMeta) owned {
	return owned{key: Key{m.Namespace, m.Name}, uid: m.UID, rv: m.ResourceVersion,
		managedBy: m.Labels[LabelManagedBy], cert: m.Labels[LabelCertificate]}
}

// listOwned lists the Secrets in ns that carry certops' label: their
// metadata only, without the data a prune does not read, when the cluster
// has a metadata client. It reads listPage of them at a time.
func (c *Cluster) listOwned(ctx context.Context, ns string) ([]owned, error) {
	opts := metav1.ListOptions{LabelSelector: selector(), Limit: listPage}
	var out []owned
	// page keeps what Prune reads of n listed items and moves opts on.
	page := func(n int, meta func(i int) *metav1.ObjectMeta, next string) {
		for i := range n {
			out = append(out, ownedOf(meta(i)))
		}
		opts.Continue = next
	}
	for {
		if c.meta != nil {
			list, err := c.secretMetadata(ns).List(ctx, opts)
			if err != nil {
				return nil, err
			}
			page(len(list.Items), func(i int) *metav1.ObjectMeta { return &list.Items[i].ObjectMeta }, list.Continue)
		} else {
			list, err := c.client.CoreV1().Secrets(ns).List(ctx, opts)
			if err != nil {
				return nil, err
			}
			page(len(list.Items), func(i int) *metav1.ObjectMeta { return &list.Items[i].ObjectMeta }, list.Continue)
		}
		if opts.Continue == "" {
			return out, nil
		}
	}
}

// listPage is how many Secrets Apply and Prune list per request (a
// variable for tests).
var listPage int64 = 500

// secretMetadata lists and gets the metadata of Secrets in ns (c.meta must
// be set).
func (c *Cluster) secretMetadata(ns string) metadata.ResourceInterface {
	return c.meta.Resource(corev1.SchemeGroupVersion.WithResource("secrets")).Namespace(ns)
}
