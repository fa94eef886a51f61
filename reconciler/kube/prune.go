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
	var out []owned
	err := c.listPages(ns, metav1.ListOptions{LabelSelector: selector()}, false, func(opts metav1.ListOptions) (string, error) {
		if c.meta != nil {
			list, err := c.secretMetadata(ns).List(ctx, opts)
			if err != nil {
				return "", err
			}
			for i := range list.Items {
				out = append(out, ownedOf(&list.Items[i].ObjectMeta))
			}
			return list.Continue, nil
		}
		list, err := c.client.CoreV1().Secrets(ns).List(ctx, opts)
		if err != nil {
			return "", err
		}
		for i := range list.Items {
			out = append(out, ownedOf(&list.Items[i].ObjectMeta))
		}
		return list.Continue, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// listPages reads a list of Secrets in ns listPage at a time: page lists
// with opts and returns its answer's continue token, and is called again
// with it until that is empty. With restart, a continue token that has
// expired (the API server compacted past it while the pages were at work)
// starts the list again, at most three times; page must then bear seeing
// items again.
func (c *Cluster) listPages(ns string, opts metav1.ListOptions, restart bool, page func(metav1.ListOptions) (string, error)) error {
	opts.Limit = listPage
	restarts := 0
	for {
		next, err := page(opts)
		if restart && apierrors.IsResourceExpired(err) && opts.Continue != "" && restarts < 3 {
			restarts++
			c.log.Debug("secret list continue token expired; listing again", "namespace", ns)
			opts.Continue = ""
			continue
		}
		if err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		opts.Continue = next
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
