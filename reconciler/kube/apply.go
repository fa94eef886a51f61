package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/csaupgrade"

	"certops.dev/certops/spec"
)

// Desired is one Secret certops wants in one namespace of one cluster.
type Desired struct {
	Namespace, Name string
	// Type defaults to kubernetes.io/tls.
	Type corev1.SecretType
	// Data is the Secret's data. When nil, Load returns it; Apply calls Load
	// only for a Secret it cannot tell is unchanged from Source, on one of
	// the cluster's Workers.
	Data map[string][]byte
	Load func() (map[string][]byte, error)
	// Source names the data without holding it, e.g. the Git blob id of the
	// encrypted file it is decrypted from: the same Source always means the
	// same Data. It is recorded in the certops.dev/source-blob annotation;
	// a live Secret that carries it, has the wanted type, labels and
	// annotations, and whose content still matches its content hash is
	// Unchanged without Load being called. "" compares the data in full.
	Source string
	// Labels and Annotations are the certificate's secretTemplate plus the
	// annotations certops derives from it (see SecretAnnotations). certops'
	// own labels and content hash are added by Apply, to copies: Apply
	// never modifies Labels, which callers may share. (Annotations is the
	// compact, read-only form the reconciler keeps for every Secret file;
	// spec.NewAnnotations makes one from a map.)
	Labels      map[string]string
	Annotations spec.Annotations
	// CertName is the certificate's name, the value of certops.dev/certificate.
	CertName string
	// TakeOver lets Apply manage a Secret of that name that another manager
	// owns, forcing server-side apply conflicts.
	TakeOver bool
}

// Key names a Secret in a cluster.
type Key struct{ Namespace, Name string }

func (k Key) String() string { return k.Namespace + "/" + k.Name }

// Key returns the Secret's namespace and name.
func (d Desired) Key() Key { return Key{d.Namespace, d.Name} }

// Outcome is what Apply did with one Desired.
type Outcome string

const (
	Created   Outcome = "created"
	Updated   Outcome = "updated"
	Unchanged Outcome = "unchanged"
	// Skipped: left alone because someone else manages it (Err is a
	// *ConflictError).
	Skipped Outcome = "skipped"
	Failed  Outcome = "failed"
)

// Result is the outcome of one Desired.
type Result struct {
	Key     Key
	Outcome Outcome
	// Hash is the content hash of what certops wants there.
	Hash string
	Err  error
}

// Report is what one Apply or Prune did in one cluster.
type Report struct {
	Cluster string
	Results []Result
	// Writes counts the write requests made (creates, applies, the
	// managed-fields hand-over patches and deletes), failed ones included.
	Writes int
}

// Count returns how many results have outcome o.
func (r Report) Count(o Outcome) int {
	n := 0
	for _, res := range r.Results {
		if res.Outcome == o {
			n++
		}
	}
	return n
}

// Apply makes every Desired Secret exist as described, in parallel with
// the cluster's Workers. It lists certops' Secrets in each namespace, a
// page at a time (each page is at work before the next is read, so memory
// does not grow with the namespace), and writes only those whose content
// differs, so an unchanged pass makes no write request. A Secret another
// manager owns is Skipped with a *ConflictError unless its Desired says
// TakeOver.
//
// The error joins every failure (Failed results; conflicts are not
// errors); each is a *ClusterError or wraps ErrNamespaceNotAllowed or
// ErrInvalid. A list that fails part way fails the Secrets it had not yet
// listed; those already listed are applied. The Report is complete even
// when the error is not nil.
func (c *Cluster) Apply(ctx context.Context, desired []Desired) (Report, error) {
	rep := Report{Cluster: c.name, Results: make([]Result, len(desired))}
	byNS := map[string][]int{}
	for i, d := range desired {
		rep.Results[i] = Result{Key: d.Key()}
		if err := c.validate(d); err != nil {
			rep.Results[i].Outcome, rep.Results[i].Err = Failed, err
			continue
		}
		byNS[d.Namespace] = append(byNS[d.Namespace], i)
	}
	// A Secret wanted twice fails after the first; looked for one
	// namespace at a time, so that no map of every Secret is held.
	for ns, idx := range byNS {
		seen := make(map[string]int, len(idx))
		kept := idx[:0]
		for _, i := range idx {
			d := desired[i]
			if j, dup := seen[d.Name]; dup {
				rep.Results[i].Outcome = Failed
				rep.Results[i].Err = fmt.Errorf("kube: cluster %s: secret %s wanted twice (entries %d and %d): %w", c.name, d.Key(), j, i, ErrInvalid)
				continue
			}
			seen[d.Name] = i
			kept = append(kept, i)
		}
		byNS[ns] = kept
	}

	var writes sync.Mutex
	type job struct {
		i        int
		existing *corev1.Secret // from the list; nil when not listed
		absent   bool           // not in the namespace at all when listed
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range c.cfg.Workers {
		wg.Go(func() {
			for j := range jobs {
				res, wrote := c.applyOne(ctx, desired[j.i], j.existing, j.absent)
				rep.Results[j.i] = res
				if wrote > 0 {
					writes.Lock()
					rep.Writes += wrote
					writes.Unlock()
				}
			}
		})
	}
	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		idx := byNS[ns]
		// Wanted Secrets not yet handed to a worker, by name.
		pending := make(map[string]int, len(idx))
		for _, i := range idx {
			pending[desired[i].Name] = i
		}
		send := func(j job) {
			delete(pending, desired[j.i].Name)
			select {
			case jobs <- j:
			case <-ctx.Done():
				rep.Results[j.i].Outcome, rep.Results[j.i].Err = Failed, ctx.Err()
			}
		}
		// The labelled Secrets come a page at a time, and each page's are
		// handed out before the next is read, so a pass holds a page of
		// Secrets and their data, not the namespace's.
		err := c.eachLabelled(ctx, ns, func(s *corev1.Secret) {
			if i, ok := pending[s.Name]; ok {
				send(job{i: i, existing: s})
			}
		})
		if err != nil {
			cerr := &ClusterError{Cluster: c.name, Op: "list secrets", Namespace: ns, Err: err}
			for _, i := range idx {
				if _, ok := pending[desired[i].Name]; ok {
					rep.Results[i].Outcome, rep.Results[i].Err = Failed, cerr
				}
			}
			continue
		}
		present := c.presentIfMissing(ctx, ns, pending)
		for _, i := range idx {
			name := desired[i].Name
			if _, ok := pending[name]; ok {
				send(job{i: i, absent: present != nil && !present[name]})
			}
		}
	}
	close(jobs)
	wg.Wait()

	var errs []error
	for _, r := range rep.Results {
		if r.Outcome == Failed {
			errs = append(errs, r.Err)
		}
	}
	return rep, errors.Join(errs...)
}

func (c *Cluster) validate(d Desired) error {
	if !c.Allows(d.Namespace) {
		return fmt.Errorf("kube: cluster %s: secret %s: %w", c.name, d.Key(), ErrNamespaceNotAllowed)
	}
	var problems []string
	if msgs := validation.IsDNS1123Subdomain(d.Name); len(msgs) > 0 {
		problems = append(problems, "name: "+strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Label(d.Namespace); len(msgs) > 0 {
		problems = append(problems, "namespace: "+strings.Join(msgs, "; "))
	}
	if msgs := validation.IsValidLabelValue(d.CertName); d.CertName == "" || len(msgs) > 0 {
		problems = append(problems, "certificate name must be a non-empty label value")
	}
	for k := range d.Labels {
		if k == LabelManagedBy || k == LabelCertificate {
			problems = append(problems, "label "+k+" is certops' own")
		}
	}
	for _, k := range []string{AnnotationContentHash, AnnotationSourceBlob} {
		if _, ok := d.Annotations.Lookup(k); ok {
			problems = append(problems, "annotation "+k+" is certops' own")
		}
	}
	if d.Data == nil && d.Load == nil {
		problems = append(problems, "no data and no loader")
	}
	if len(problems) > 0 {
		return fmt.Errorf("kube: cluster %s: secret %s: %s: %w", c.name, d.Key(), strings.Join(problems, ", "), ErrInvalid)
	}
	return nil
}

func selector() string {
	return labels.Set{LabelManagedBy: LabelManagedByValue}.String()
}

// eachLabelled calls f with every Secret in ns that carries certops'
// label, a page at a time. A continue token that expires while a long pass
// is at work (the API server has compacted past it) restarts the list
// from the start; f may then see a Secret again.
func (c *Cluster) eachLabelled(ctx context.Context, ns string, f func(*corev1.Secret)) error {
	return c.listPages(ns, metav1.ListOptions{LabelSelector: selector()}, true, func(opts metav1.ListOptions) (string, error) {
		list, err := c.client.CoreV1().Secrets(ns).List(ctx, opts)
		if err != nil {
			return "", err
		}
		for k := range list.Items {
			f(&list.Items[k])
		}
		return list.Continue, nil
	})
}

// presentIfMissing returns which of the wanted Secrets in missing (wanted,
// and not among certops' labelled Secrets of namespace ns) exist anyway,
// under another manager, so that applyOne need not look each up (a cluster
// rebuilt from Git has none of them). It lists metadata only, a page at a
// time, and returns nil when missing is empty or it cannot list (then
// applyOne looks each up, as before).
func (c *Cluster) presentIfMissing(ctx context.Context, ns string, missing map[string]int) map[string]bool {
	if c.meta == nil || len(missing) == 0 {
		return nil
	}
	present := map[string]bool{}
	err := c.listPages(ns, metav1.ListOptions{}, false, func(opts metav1.ListOptions) (string, error) {
		list, err := c.secretMetadata(ns).List(ctx, opts)
		if err != nil {
			return "", err
		}
		for _, m := range list.Items {
			if _, ok := missing[m.Name]; ok {
				present[m.Name] = true
			}
		}
		return list.Continue, nil
	})
	if err != nil {
		c.log.Debug("listing secret names failed; looking each up", "namespace", ns, "error", err)
		return nil
	}
	return present
}

// applyOne applies d. existing is its Secret from the labelled list, if
// there; absent says the namespace held no Secret of that name when listed.
// It returns how many write requests it made.
func (c *Cluster) applyOne(ctx context.Context, d Desired, existing *corev1.Secret, absent bool) (Result, int) {
	res := Result{Key: d.Key()}
	writes := 0
	fail := func(op string, err error) (Result, int) {
		res.Outcome, res.Err = Failed, &ClusterError{Cluster: c.name, Op: op, Namespace: d.Namespace, Name: d.Name, Err: err}
		return res, writes
	}
	if ctx.Err() != nil {
		res.Outcome, res.Err = Failed, ctx.Err()
		return res, writes
	}
	secrets := c.client.CoreV1().Secrets(d.Namespace)
	if existing == nil && !absent {
		// Not labelled as ours: it may still exist under another manager.
		s, err := secrets.Get(ctx, d.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fail("get secret", err)
		default:
			existing = s
		}
	}
	meta := renderMeta(d)
	outcome := Created
	if existing != nil {
		outcome = Updated
		if conflict := foreign(existing); conflict != nil && !d.TakeOver {
			res.Outcome, res.Err = Skipped, conflict
			c.log.Warn("secret left alone", "namespace", d.Namespace, "secret", d.Name, "reason", conflict.Reason, "managers", conflict.Managers)
			return res, writes
		}
		if d.Source != "" && sourceUnchanged(existing, meta) {
			res.Outcome, res.Hash = Unchanged, existing.Annotations[AnnotationContentHash]
			return res, writes
		}
	}
	if d.Data == nil {
		data, err := d.Load()
		if err != nil {
			return fail("load secret data", err)
		}
		d.Data = data
	}
	want := render(meta, d)
	res.Hash = want.hash
	if existing != nil && existing.Annotations[AnnotationContentHash] == want.hash && liveHash(existing, want) == want.hash {
		res.Outcome = Unchanged
		return res, writes
	}
	if existing == nil {
		// A plain create costs the API server about a third less than a
		// server-side apply that creates (no apply-patch parsing, no merge),
		// which is most of a first apply to a rebuilt cluster. It records
		// certops' fields under an Update entry; adoptCreated turns that
		// into the Apply entry before a write that drops one of them, so
		// fields certops stops setting are removed as with any apply.
		err := c.createSecret(ctx, secrets, want.secret(d))
		writes++
		if err == nil {
			res.Outcome = Created
			c.log.Info("secret applied", "namespace", d.Namespace, "secret", d.Name, "cert", d.CertName, "outcome", string(Created))
			return res, writes
		}
		if !apierrors.IsAlreadyExists(err) {
			return fail("create secret", err)
		}
		// It appeared in between: apply without force, so that it is not
		// taken from whoever made it.
		outcome = Updated
	} else {
		sent, err := c.adoptCreated(ctx, existing, want)
		if sent {
			writes++
		}
		if err != nil {
			// Applying now would record the new content hash, and later
			// passes would find the Secret unchanged with the dropped field
			// still there. Failing leaves it for the next pass, which lists
			// it again.
			return fail("hand created fields to the apply entry", err)
		}
	}
	// Once the Secret is certops' (its label, and no other manager owns its
	// data) or is being taken over, force: the remaining conflicts are
	// labels or annotations certops sets from the spec, or certops' own
	// fields from a non-apply write.
	_, err := secrets.Apply(ctx, want.apply(d), metav1.ApplyOptions{FieldManager: FieldManager, Force: existing != nil})
	writes++
	if apierrors.IsConflict(err) {
		res.Outcome = Skipped
		res.Err = &ConflictError{Namespace: d.Namespace, Name: d.Name, Reason: "apply-conflict", Managers: conflictManagers(err)}
		c.log.Warn("secret left alone", "namespace", d.Namespace, "secret", d.Name, "reason", "apply-conflict")
		return res, writes
	}
	if err != nil {
		return fail("apply secret", err)
	}
	res.Outcome = outcome
	c.log.Info("secret applied", "namespace", d.Namespace, "secret", d.Name, "cert", d.CertName, "outcome", string(outcome))
	return res, writes
}

// createAccept asks the API server to answer a create with the new
// Secret's metadata only, as client-go's metadata client asks for lists.
const createAccept = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1," +
	"application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"

// createSecret creates s. certops reads nothing from the created object, so
// when the cluster has a REST client of its own the answer is asked for as
// metadata only and not decoded: in a first apply to a rebuilt cluster,
// decoding whole Secrets back was a fifth of what certops allocated. An
// error (already exists, forbidden...) is the usual *StatusError.
func (c *Cluster) createSecret(ctx context.Context, secrets typedcorev1.SecretInterface, s *corev1.Secret) error {
	opts := metav1.CreateOptions{FieldManager: FieldManager}
	if c.core == nil {
		_, err := secrets.Create(ctx, s, opts)
		return err
	}
	return c.createRequest(s, opts).Do(ctx).Error()
}

// createRequest is the request createSecret makes when the cluster has a
// REST client of its own.
func (c *Cluster) createRequest(s *corev1.Secret, opts metav1.CreateOptions) *rest.Request {
	return c.core.Post().Namespace(s.Namespace).Resource("secrets").
		VersionedParams(&opts, scheme.ParameterCodec).
		SetHeader("Accept", createAccept).
		Body(s)
}

// sourceUnchanged reports whether the live Secret holds the data of the
// wanted Source without looking at that data: its source annotation names
// the same source, its type, labels and annotations are the wanted ones,
// and its content hash annotation still matches all it holds (so an edit
// by hand of the data behind the annotations is seen and repaired). Data
// keys certops no longer sets cannot linger: they were hashed when the
// annotation was written, and the same source means the same keys.
func sourceUnchanged(s *corev1.Secret, want rendered) bool {
	if s.Annotations[AnnotationSourceBlob] != want.annotations[AnnotationSourceBlob] || s.Type != want.typ {
		return false
	}
	for _, m := range []struct{ live, wanted map[string]string }{{s.Labels, want.labels}, {s.Annotations, want.annotations}} {
		for k, v := range m.wanted {
			if lv, ok := m.live[k]; !ok || lv != v {
				return false
			}
		}
	}
	h := s.Annotations[AnnotationContentHash]
	return h != "" && ContentHash(s.Type, s.Data, want.labels, want.annotations) == h
}

// rendered is what certops sets on a Secret.
type rendered struct {
	typ         corev1.SecretType
	data        map[string][]byte
	labels      map[string]string
	annotations map[string]string // without the content hash
	hash        string
}

// renderMeta is what render sets besides the data: type, labels and
// annotations.
func renderMeta(d Desired) rendered {
	r := rendered{typ: d.Type}
	if r.typ == "" {
		r.typ = corev1.SecretTypeTLS
	}
	r.labels = maps.Clone(d.Labels)
	if r.labels == nil {
		r.labels = map[string]string{}
	}
	r.labels[LabelManagedBy] = LabelManagedByValue
	r.labels[LabelCertificate] = d.CertName
	r.annotations = d.Annotations.Map()
	if r.annotations == nil {
		r.annotations = map[string]string{}
	}
	if d.Source != "" {
		r.annotations[AnnotationSourceBlob] = d.Source
	}
	return r
}

// render completes meta (from renderMeta(d)) with d's data and its content
// hash.
func render(meta rendered, d Desired) rendered {
	r := meta
	r.data = d.Data
	r.hash = ContentHash(r.typ, r.data, r.labels, r.annotations)
	return r
}

// withHash is the annotations certops sets, content hash included.
func (r rendered) withHash() map[string]string {
	ann := maps.Clone(r.annotations)
	ann[AnnotationContentHash] = r.hash
	return ann
}

// apply is r as the server-side apply configuration of d's Secret.
func (r rendered) apply(d Desired) *corev1ac.SecretApplyConfiguration {
	return corev1ac.Secret(d.Name, d.Namespace).
		WithType(r.typ).
		WithLabels(r.labels).
		WithAnnotations(r.withHash()).
		WithData(r.data)
}

// secret is r as a Secret to create.
func (r rendered) secret(d Desired) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: d.Namespace, Labels: r.labels, Annotations: r.withHash()},
		Type:       r.typ,
		Data:       r.data,
	}
}

// adoptCreated hands the fields certops recorded when it created s (an
// Update entry of its field manager) to its Apply entry, as kubectl does
// when moving from client-side to server-side apply, before a write of want
// that drops a label, annotation or data key s has. Without it, the dropped
// field would stay, still owned by the Update entry. Writes that drop
// nothing (a renewal) need no extra request: the fields stay shared by the
// two entries. The patch carries s's resourceVersion, so it is refused if s
// changed since it was listed. It reports whether it sent a request, and
// the error of the hand-over.
func (c *Cluster) adoptCreated(ctx context.Context, s *corev1.Secret, want rendered) (bool, error) {
	if !slices.ContainsFunc(s.ManagedFields, func(e metav1.ManagedFieldsEntry) bool {
		return e.Manager == FieldManager && e.Operation == metav1.ManagedFieldsOperationUpdate && e.Subresource == ""
	}) || !drops(s, want) {
		return false, nil
	}
	patch, err := csaupgrade.UpgradeManagedFieldsPatch(s, sets.New(FieldManager), FieldManager)
	if err != nil || patch == nil {
		return false, err
	}
	_, err = c.client.CoreV1().Secrets(s.Namespace).Patch(ctx, s.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	return true, err
}

// drops reports whether s has a label, annotation (besides the content
// hash) or data key that want does not set, whoever set it.
func drops(s *corev1.Secret, want rendered) bool {
	return hasKeyBeyond(s.Labels, want.labels, "") ||
		hasKeyBeyond(s.Annotations, want.annotations, AnnotationContentHash) ||
		hasKeyBeyond(s.Data, want.data, "")
}

// hasKeyBeyond reports whether live has a key other than except that want
// lacks.
func hasKeyBeyond[V, W any](live map[string]V, want map[string]W, except string) bool {
	for k := range live {
		if _, ok := want[k]; !ok && k != except {
			return true
		}
	}
	return false
}

// liveHash hashes what the live Secret holds in the fields certops sets, so
// an edit by hand behind an unchanged hash annotation is still repaired.
func liveHash(s *corev1.Secret, want rendered) string {
	data := make(map[string][]byte, len(want.data))
	for k := range want.data {
		if v, ok := s.Data[k]; ok {
			data[k] = v
		}
	}
	pick := func(live, wanted map[string]string) map[string]string {
		out := make(map[string]string, len(wanted))
		for k := range wanted {
			if v, ok := live[k]; ok {
				out[k] = v
			}
		}
		return out
	}
	return ContentHash(s.Type, data, pick(s.Labels, want.labels), pick(s.Annotations, want.annotations))
}

// ContentHash is the value of the certops.dev/content-hash annotation:
// SHA-256 over the type, data, labels and annotations certops sets, in a
// length-prefixed canonical order, hex-encoded.
func ContentHash(typ corev1.SecretType, data map[string][]byte, labels, annotations map[string]string) string {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		for i := range n {
			n[i] = byte(uint64(len(b)) >> (56 - 8*i))
		}
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte("certops.dev/content-hash/v1"))
	field([]byte(typ))
	for _, section := range []struct {
		tag string
		m   map[string][]byte
	}{{"data", data}, {"labels", strBytes(labels)}, {"annotations", strBytes(annotations)}} {
		field([]byte(section.tag))
		for _, k := range slices.Sorted(maps.Keys(section.m)) {
			field([]byte(k))
			field(section.m[k])
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func strBytes(m map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out
}

// foreign returns why an existing Secret is not certops' to write, or nil.
func foreign(s *corev1.Secret) *ConflictError {
	var others []string
	dataOwners := false
	for _, mf := range s.ManagedFields {
		if mf.Manager == FieldManager {
			continue
		}
		if !slices.Contains(others, mf.Manager) {
			others = append(others, mf.Manager)
		}
		if mf.FieldsV1 != nil && ownsData(mf.FieldsV1.GetRawBytes()) {
			dataOwners = true
		}
	}
	slices.Sort(others)
	if s.Labels[LabelManagedBy] != LabelManagedByValue {
		return &ConflictError{Namespace: s.Namespace, Name: s.Name, Reason: "unlabelled", Managers: others}
	}
	if dataOwners {
		return &ConflictError{Namespace: s.Namespace, Name: s.Name, Reason: "managed-fields", Managers: others}
	}
	return nil
}

// ownsData reports whether a managedFields entry (FieldsV1 JSON) owns any
// field under data or stringData.
func ownsData(fieldsV1 []byte) bool {
	var top map[string]map[string]json.RawMessage
	if err := json.Unmarshal(fieldsV1, &top); err != nil {
		// Unreadable ownership: assume the worst, leave the Secret alone.
		return true
	}
	return len(top["f:data"]) > 0 || len(top["f:stringData"]) > 0
}

// conflictManagers pulls the manager names out of a server-side apply
// conflict (reported as causes of type FieldManagerConflict).
func conflictManagers(err error) []string {
	var st apierrors.APIStatus
	if !errors.As(err, &st) || st.Status().Details == nil {
		return nil
	}
	var out []string
	for _, cause := range st.Status().Details.Causes {
		// The message reads: conflict with "manager" using v1: .data.tls.crt
		if _, rest, ok := strings.Cut(cause.Message, `conflict with "`); ok {
			if m, _, ok := strings.Cut(rest, `"`); ok && !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	slices.Sort(out)
	return out
}
