package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"certops.dev/certops/reconciler"
	"certops.dev/certops/reconciler/kube"
	"certops.dev/certops/spec"
)

// kubeApplier is the cluster step: it keeps one kube.Fleet for the clusters
// certops.yaml names, rebuilt when that list changes.
type kubeApplier struct {
	log *slog.Logger

	mu       sync.Mutex
	key      string
	fleet    *kube.Fleet
	clusters map[string]*kube.Cluster
}

func newApplier(log *slog.Logger) reconciler.Applier {
	kube.RouteKlog(log)
	return &kubeApplier{log: log}
}

// fleetFor returns the fleet for cfg's clusters, building it when they
// changed. Encrypted kubeconfigs are decrypted in memory.
func (a *kubeApplier) fleetFor(req reconciler.ApplyRequest) (*kube.Fleet, map[string]*kube.Cluster, error) {
	type built struct {
		spec       spec.Cluster
		kubeconfig []byte
	}
	var all []built
	h := sha256.New()
	for _, cl := range req.Config.Spec.Clusters {
		b := built{spec: cl}
		if cl.Kubeconfig != nil && cl.Kubeconfig.EncryptedFile != "" {
			data, err := req.ReadSecret(cl.Kubeconfig.EncryptedFile)
			if err != nil {
				return nil, nil, fmt.Errorf("cluster %s: decrypting %s: %w", cl.Name, cl.Kubeconfig.EncryptedFile, err)
			}
			if b.kubeconfig = data["kubeconfig"]; len(b.kubeconfig) == 0 {
				return nil, nil, fmt.Errorf("cluster %s: %s holds no key \"kubeconfig\"", cl.Name, cl.Kubeconfig.EncryptedFile)
			}
		}
		js, _ := json.Marshal(cl)
		h.Write(js)
		h.Write(b.kubeconfig)
		all = append(all, b)
	}
	key := hex.EncodeToString(h.Sum(nil))
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fleet != nil && a.key == key {
		return a.fleet, a.clusters, nil
	}
	clusters := map[string]*kube.Cluster{}
	var list []*kube.Cluster
	for _, b := range all {
		cc := kube.ClusterConfig{InCluster: b.spec.InCluster, Kubeconfig: b.kubeconfig, Namespaces: b.spec.Namespaces,
			Prune: b.spec.Prune, QPS: b.spec.QPS, Burst: b.spec.Burst, Logger: a.log.With("cluster", b.spec.Name)}
		if kc := b.spec.Kubeconfig; kc != nil {
			cc.KubeconfigPath, cc.Context = kc.Path, kc.Context
		}
		c, err := kube.NewCluster(b.spec.Name, cc)
		if err != nil {
			return nil, nil, fmt.Errorf("cluster %s: %w", b.spec.Name, err)
		}
		clusters[b.spec.Name] = c
		list = append(list, c)
	}
	fleet, err := kube.NewFleet(list...)
	if err != nil {
		return nil, nil, err
	}
	fleet.Logger = a.log
	a.fleet, a.clusters, a.key = fleet, clusters, key
	return fleet, clusters, nil
}

func (a *kubeApplier) Apply(ctx context.Context, req reconciler.ApplyRequest) reconciler.ApplyReport {
	var rep reconciler.ApplyReport
	if len(req.Config.Spec.Clusters) == 0 {
		return rep
	}
	fleet, clusters, err := a.fleetFor(req)
	if err != nil {
		rep.Errors = append(rep.Errors, err)
		return rep
	}
	pass := kube.Pass{Desired: map[string][]kube.Desired{}, Prune: true}
	for _, d := range req.Desired {
		data := d.Data
		if extra, err := a.outputs(ctx, clusters[d.Target.Cluster], d); err != nil {
			rep.Errors = append(rep.Errors, fmt.Errorf("%s in %s: %w", d.Cert, d.Target, err))
		} else if len(extra) > 0 {
			data = make(map[string][]byte, len(d.Data)+len(extra))
			for k, v := range d.Data {
				data[k] = v
			}
			for k, v := range extra {
				data[k] = v
			}
		}
		// reconciler/kube sets certops' own labels itself, from CertName
		// (a label value: the certificate's name).
		labels := make(map[string]string, len(d.Labels))
		for k, v := range d.Labels {
			if k != spec.LabelManagedBy && k != spec.LabelCertificate {
				labels[k] = v
			}
		}
		_, certName, _ := strings.Cut(d.Cert, "/")
		pass.Desired[d.Target.Cluster] = append(pass.Desired[d.Target.Cluster], kube.Desired{
			Namespace: d.Target.Namespace, Name: d.Target.SecretName, Type: corev1.SecretType(d.Type), Data: data,
			Labels: labels, Annotations: d.Annotations, CertName: certName, TakeOver: d.Target.TakeOver})
	}
	fr := fleet.Apply(ctx, pass)
	for name, out := range fr.Clusters {
		before := len(rep.Errors)
		for _, r := range []kube.Report{out.Apply, out.Prune} {
			rep.Applied += r.Count(kube.Created) + r.Count(kube.Updated) + r.Count(kube.Deleted)
			rep.Unchanged += r.Count(kube.Unchanged)
			rep.Skipped += r.Count(kube.Skipped)
			for _, res := range r.Results {
				if res.Err != nil {
					rep.Errors = append(rep.Errors, fmt.Errorf("cluster %s: %w", name, res.Err))
				}
			}
		}
		if out.Err != nil && len(rep.Errors) == before { // else it repeats the results' errors
			rep.Errors = append(rep.Errors, out.Err)
		}
	}
	return rep
}

// outputs computes the extra keys a certificate asks for (keystores,
// tls-combined.pem, key.der); keystore passwords are read from the target
// namespace.
func (a *kubeApplier) outputs(ctx context.Context, cluster *kube.Cluster, d reconciler.Desired) (map[string][]byte, error) {
	s := d.Spec
	var o kube.Outputs
	for _, f := range s.AdditionalOutputFormats {
		o.CombinedPEM = o.CombinedPEM || f.Type == "CombinedPEM"
		o.DER = o.DER || f.Type == "DER"
	}
	if ks := s.Keystores; ks != nil && cluster != nil {
		for _, k := range []struct {
			ks  *spec.Keystore
			dst **kube.KeystoreOutput
		}{{ks.PKCS12, &o.PKCS12}, {ks.JKS, &o.JKS}} {
			if k.ks == nil || !k.ks.Create {
				continue
			}
			key := k.ks.PasswordSecretRef.Key
			if key == "" {
				key = "password"
			}
			pw, err := cluster.SecretValue(ctx, d.Target.Namespace, k.ks.PasswordSecretRef.Name, key)
			if err != nil {
				return nil, fmt.Errorf("keystore password: %w", err)
			}
			*k.dst = &kube.KeystoreOutput{Password: pw, Alias: k.ks.Alias, Profile: k.ks.Profile}
		}
	}
	if o == (kube.Outputs{}) {
		return nil, nil
	}
	if len(d.Data["tls.crt"]) == 0 || len(d.Data["tls.key"]) == 0 {
		return nil, errors.New("the Secret holds no keypair")
	}
	return kube.OutputData(kube.Keypair{Chain: d.Data["tls.crt"], Key: d.Data["tls.key"], CA: d.Data["ca.crt"]}, o)
}
