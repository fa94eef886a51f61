package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// FieldManager is the server-side apply field manager certops writes as.
const FieldManager = "certops"

// Labels certops puts on every Secret it applies, the annotation that
// records the hash of what it set, and the one that names where its data
// came from.
const (
	LabelManagedBy        = "app.kubernetes.io/managed-by"
	LabelManagedByValue   = "certops"
	LabelCertificate      = "certops.dev/certificate"
	AnnotationContentHash = "certops.dev/content-hash"
	// AnnotationSourceBlob is Desired.Source: the Git blob id of the
	// encrypted file the Secret's data was decrypted from (with a suffix
	// when derived keys are added). It is covered by the content hash, so
	// a Secret whose annotation still names the current file and whose
	// content still matches its hash needs no decryption to be known
	// unchanged. Set only when Source is.
	AnnotationSourceBlob = "certops.dev/source-blob"
)

// Defaults for client-side rate limits and apply concurrency. client-go's
// own defaults (QPS 5, burst 10) make a first pass over 1,000 Secrets take
// minutes; a Secret apply is cheap for the API server, so certops asks for
// more unless the cluster's configuration says otherwise.
const (
	DefaultQPS     = 50
	DefaultBurst   = 100
	DefaultWorkers = 8
)

// ClusterConfig says how to reach one cluster and what certops may do there.
// Exactly one of InCluster, KubeconfigPath, Kubeconfig and REST is set.
type ClusterConfig struct {
	// InCluster uses the pod's service account.
	InCluster bool
	// KubeconfigPath is a kubeconfig file on the daemon's host.
	KubeconfigPath string
	// Kubeconfig is a kubeconfig's content, for example decrypted from the
	// repository in memory. It is parsed, never written anywhere.
	Kubeconfig []byte
	// Context picks a context of the kubeconfig; empty means its current one.
	Context string
	// REST is a ready client configuration (tests, embedding). It is copied.
	REST *rest.Config

	// Namespaces certops may write to; empty means any.
	Namespaces []string
	// Prune lets Cluster.Prune delete certops' Secrets that are no longer
	// wanted. Off by default.
	Prune bool
	// QPS and Burst limit the client's request rate (DefaultQPS,
	// DefaultBurst when zero).
	QPS   float32
	Burst int
	// Workers is how many applies run at once (DefaultWorkers when zero).
	Workers int
	// Logger receives one line per write and per conflict; nil discards.
	Logger *slog.Logger
}

// Cluster writes certops' Secrets to one cluster. It is safe for concurrent
// use.
type Cluster struct {
	name    string
	cfg     ClusterConfig
	client  kubernetes.Interface
	meta    metadata.Interface // nil: no metadata-only lists (NewClusterForClient)
	core    rest.Interface     // nil: creates go through client (NewClusterForClient)
	log     *slog.Logger
	allowed map[string]bool // nil: any namespace
}

// NewCluster builds the client for a cluster. It makes no request.
func NewCluster(name string, cfg ClusterConfig) (*Cluster, error) {
	if name == "" {
		return nil, fmt.Errorf("kube: new cluster: empty name: %w", ErrInvalid)
	}
	rc, err := restConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube: cluster %s: %w", name, err)
	}
	rc.QPS, rc.Burst = cfg.QPS, cfg.Burst
	if rc.QPS == 0 {
		rc.QPS = DefaultQPS
	}
	if rc.Burst == 0 {
		rc.Burst = DefaultBurst
	}
	rc.UserAgent = "certops"
	// Protocol buffers for core objects, as kube-controller-manager speaks
	// them: lists and apply responses of Secrets decode several times
	// faster than JSON on both sides. Server-side apply bodies stay JSON.
	rc.ContentType = runtime.ContentTypeProtobuf
	rc.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	// Uncompressed responses. The API server gzips those over 128 KiB,
	// which for certops means lists of Secrets: keys and certificates,
	// which gzip shrinks by little. In a pass that found 10,000 Secrets
	// unchanged, compressing them was a quarter of the API server's CPU,
	// and inflating them a seventh of certops'. Every request says so
	// itself: rest.Config.DisableCompression does not reach client-go's
	// shared default transport (a server that needs no TLS settings of its
	// own).
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return identityEncoding{rt} })
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kube: cluster %s: client: %w", name, err)
	}
	// Metadata-only lists (names, labels, UIDs) for what needs no data:
	// which Secrets exist, and what to prune.
	mc, err := metadata.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kube: cluster %s: metadata client: %w", name, err)
	}
	c := newCluster(name, cfg, cs)
	c.meta, c.core = mc, cs.CoreV1().RESTClient()
	return c, nil
}

// NewClusterForClient wraps an existing clientset (for example a fake one in
// unit tests). cfg's connection fields are ignored.
func NewClusterForClient(name string, cfg ClusterConfig, client kubernetes.Interface) *Cluster {
	return newCluster(name, cfg, client)
}

func newCluster(name string, cfg ClusterConfig, client kubernetes.Interface) *Cluster {
	c := &Cluster{name: name, cfg: cfg, client: client, log: cfg.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("cluster", name)
	if len(cfg.Namespaces) > 0 {
		c.allowed = make(map[string]bool, len(cfg.Namespaces))
		for _, ns := range cfg.Namespaces {
			c.allowed[ns] = true
		}
	}
	if c.cfg.Workers <= 0 {
		c.cfg.Workers = DefaultWorkers
	}
	return c
}

// Name is the cluster's name in certops.yaml.
func (c *Cluster) Name() string { return c.name }

// Allows reports whether certops may write to namespace ns in this cluster.
func (c *Cluster) Allows(ns string) bool { return c.allowed == nil || c.allowed[ns] }

// restConfig turns the one way to reach the cluster into a client config.
func restConfig(cfg ClusterConfig) (*rest.Config, error) {
	n := 0
	for _, set := range []bool{cfg.InCluster, cfg.KubeconfigPath != "", len(cfg.Kubeconfig) > 0, cfg.REST != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("set exactly one of in-cluster, kubeconfig path, kubeconfig content and REST config (%d set): %w", n, ErrInvalid)
	}
	switch {
	case cfg.InCluster:
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
		return rc, nil
	case cfg.KubeconfigPath != "":
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: cfg.KubeconfigPath}
		rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
			&clientcmd.ConfigOverrides{CurrentContext: cfg.Context}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", cfg.KubeconfigPath, err)
		}
		return rc, nil
	case len(cfg.Kubeconfig) > 0:
		return RESTConfigFromKubeconfig(cfg.Kubeconfig, cfg.Context)
	default:
		return rest.CopyConfig(cfg.REST), nil
	}
}

// RESTConfigFromKubeconfig parses kubeconfig content and picks a context
// (its current one when context is empty). The error never quotes the
// content, which holds credentials.
func RESTConfigFromKubeconfig(kubeconfig []byte, context string) (*rest.Config, error) {
	raw, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: parse: %w", ErrInvalid)
	}
	if context == "" {
		context = raw.CurrentContext
	}
	if _, ok := raw.Contexts[context]; !ok {
		names := make([]string, 0, len(raw.Contexts))
		for n := range raw.Contexts {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("kubeconfig: context %q not found (have %v): %w", context, names, ErrInvalid)
	}
	rc, err := clientcmd.NewNonInteractiveClientConfig(*raw, context, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: context %q: %w", context, errors.Join(ErrInvalid, err))
	}
	return rc, nil
}

// SecretValue reads one key of a Secret, for example the password of a
// keystore from the Secret a certificate's keystores.*.passwordSecretRef
// names. Reading needs `get` on Secrets in that namespace.
func (c *Cluster) SecretValue(ctx context.Context, namespace, name, key string) ([]byte, error) {
	if !c.Allows(namespace) {
		return nil, fmt.Errorf("kube: cluster %s: read secret %s/%s: %w", c.name, namespace, name, ErrNamespaceNotAllowed)
	}
	s, err := c.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, &ClusterError{Cluster: c.name, Op: "get secret", Namespace: namespace, Name: name, Err: err}
	}
	v, ok := s.Data[key]
	if !ok {
		return nil, fmt.Errorf("kube: cluster %s: secret %s/%s has no key %q: %w", c.name, namespace, name, key, ErrInvalid)
	}
	return v, nil
}

// Ping asks the API server for its version: a cheap reachability check.
func (c *Cluster) Ping(ctx context.Context) (string, error) {
	v, err := c.client.Discovery().ServerVersion()
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", &ClusterError{Cluster: c.name, Op: "get version", Err: err}
	}
	return v.GitVersion, nil
}

// identityEncoding asks for responses without content encoding; Go's
// transport then asks for no gzip either.
type identityEncoding struct{ rt http.RoundTripper }

func (t identityEncoding) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Accept-Encoding") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Accept-Encoding", "identity")
	}
	return t.rt.RoundTrip(r)
}
