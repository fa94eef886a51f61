package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"

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
	pass := kube.Pass{Desired: kube.DesiredMap(req.Desired), Prune: true}
	for _, d := range req.Desired {
		kd := kube.SecretFor(d)
		o, err := a.outputs(ctx, clusters[d.Target.Cluster], d)
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Errorf("%s in %s: %w", d.Cert, d.Target, err))
		}
		switch {
		case o.PKCS12 != nil || o.JKS != nil:
			// Keystore passwords come from the cluster and may change while
			// the file does not: load now and compare in full.
			if kd.Data == nil {
				if kd.Data, err = d.Load(); err != nil {
					rep.Errors = append(rep.Errors, fmt.Errorf("%s in %s: %w", d.Cert, d.Target, err))
					continue
				}
			}
			kd.Load, kd.Source = nil, ""
			if kd.Data, err = withOutputs(kd.Data, o); err != nil {
				rep.Errors = append(rep.Errors, fmt.Errorf("%s in %s: %w", d.Cert, d.Target, err))
			}
		case o.CombinedPEM || o.DER:
			// Derived from the data alone: the same file gives the same
			// keys, so the source stays, naming the outputs too (a spec
			// that drops one must not look unchanged).
			if kd.Source != "" {
				kd.Source += outputsSuffix(o)
			}
			if kd.Data != nil {
				if kd.Data, err = withOutputs(kd.Data, o); err != nil {
					rep.Errors = append(rep.Errors, fmt.Errorf("%s in %s: %w", d.Cert, d.Target, err))
					kd.Source = ""
				}
				break
			}
			load := d.Load
			kd.Load = func() (map[string][]byte, error) {
				data, err := load()
				if err != nil {
					return nil, err
				}
				return withOutputs(data, o)
			}
		}
		pass.Desired[d.Target.Cluster] = append(pass.Desired[d.Target.Cluster], kd)
	}
	fleet.Apply(ctx, pass).AddTo(&rep)
	return rep
}

// outputs says which extra keys a certificate asks for (keystores,
// tls-combined.pem, key.der); keystore passwords are read from the target
// namespace. On error it returns what it could read.
func (a *kubeApplier) outputs(ctx context.Context, cluster *kube.Cluster, d reconciler.Desired) (kube.Outputs, error) {
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
				return kube.Outputs{}, fmt.Errorf("keystore password: %w", err)
			}
			*k.dst = &kube.KeystoreOutput{Password: pw, Alias: k.ks.Alias, Profile: k.ks.Profile}
		}
	}
	return o, nil
}

// outputsSuffix names the derived keys o adds, appended to a Source.
func outputsSuffix(o kube.Outputs) string {
	var s string
	if o.CombinedPEM {
		s += "+" + kube.KeyCombinedPEM
	}
	if o.DER {
		s += "+" + kube.KeyDER
	}
	return s
}

// withOutputs returns data with the extra keys o asks for added, in a new
// map (data may be shared by several targets). On error it returns data
// unchanged.
func withOutputs(data map[string][]byte, o kube.Outputs) (map[string][]byte, error) {
	if o == (kube.Outputs{}) {
		return data, nil
	}
	if len(data["tls.crt"]) == 0 || len(data["tls.key"]) == 0 {
		return data, errors.New("the Secret holds no keypair")
	}
	extra, err := kube.OutputData(kube.Keypair{Chain: data["tls.crt"], Key: data["tls.key"], CA: data["ca.crt"]}, o)
	if err != nil {
		return data, err
	}
	out := make(map[string][]byte, len(data)+len(extra))
	maps.Copy(out, data)
	maps.Copy(out, extra)
	return out, nil
}
