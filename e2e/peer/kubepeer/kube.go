// Package kubepeer starts a real kube-apiserver with etcd for tests, from
// the binaries e2e/tools builds. It is apart from package peer so that only
// the tests that need a cluster link client-go and envtest.
package kubepeer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"certops.dev/certops/e2e/peer"
)

// envtest logs through controller-runtime's global logger, which otherwise
// prints a warning with a stack trace; the peer's own errors fail the test.
func init() { ctrllog.SetLogger(logr.Discard()) }

// Kube is a real kube-apiserver with its etcd, started through
// controller-runtime's envtest from the binaries e2e/tools builds.
//
// Every request that changes something (create, update, patch, delete,
// deletecollection) is written by the apiserver to an audit log before the
// request is served, so Writes counts what reached the server, not what a
// client believes it sent.
type Kube struct {
	// Config reaches the apiserver as a member of system:masters. Copy it
	// (rest.CopyConfig) before changing it.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file with the same identity,
	// inside the test's temporary directory.
	Kubeconfig string
	// APIServer is the path of the kube-apiserver binary that runs.
	APIServer string

	env      *envtest.Environment
	auditLog string

	mu      sync.Mutex
	stopped bool
}

// KubeOption changes how StartKube starts the cluster.
type KubeOption func(*kubeOptions)

type kubeOptions struct {
	apiserver string
}

// WithAPIServer picks the kube-apiserver binary by its name in ToolsDir, for
// example "kube-apiserver-1.35" to run against another Kubernetes minor. The
// default is $CERTOPS_KUBE_APISERVER, or "kube-apiserver" when unset.
func WithAPIServer(name string) KubeOption {
	return func(o *kubeOptions) { o.apiserver = name }
}

// auditPolicy records, at the stage the request arrives, every write that
// is not the apiserver's own bookkeeping. RequestReceived events are written
// in the log backend's default blocking mode before the request is handled,
// so a count read after a client call returns includes that call.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [ResponseStarted, ResponseComplete, Panic]
rules:
  - level: None
    users: ["system:apiserver"]
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
`

// StartKube starts etcd and kube-apiserver on loopback ports and stops them
// when the test ends. It fails the test when a binary is missing.
func StartKube(t testing.TB, opts ...KubeOption) *Kube {
	t.Helper()
	o := kubeOptions{apiserver: os.Getenv("CERTOPS_KUBE_APISERVER")}
	if o.apiserver == "" {
		o.apiserver = "kube-apiserver"
	}
	for _, opt := range opts {
		opt(&o)
	}
	apiserverPath := peer.Bin(t, o.apiserver)
	etcdPath := peer.Bin(t, "etcd")

	dir := t.TempDir()
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		t.Fatalf("peer: write audit policy: %v", err)
	}
	certDir := filepath.Join(dir, "apiserver")
	if err := os.Mkdir(certDir, 0o700); err != nil {
		t.Fatalf("peer: %v", err)
	}
	k := &Kube{APIServer: apiserverPath, auditLog: filepath.Join(dir, "audit.log")}

	// A CertDir we own survives a Stop, so Restart brings the apiserver back
	// on the same port with the same serving and client CAs: clients built
	// from Config before the restart keep working after it.
	api := &envtest.APIServer{Path: apiserverPath, CertDir: certDir}
	api.Configure().
		Set("audit-policy-file", policy).
		Set("audit-log-path", k.auditLog).
		Set("audit-log-mode", "blocking")
	useExisting := false
	k.env = &envtest.Environment{
		BinaryAssetsDirectory: peer.ToolsDir(),
		UseExistingCluster:    &useExisting,
		// envtest's 20 s defaults are too short on a loaded 2-core
		// machine (a CI run compiles with -race alongside).
		ControlPlaneStartTimeout: 3 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
		ControlPlane: envtest.ControlPlane{
			APIServer: api,
			Etcd:      &envtest.Etcd{Path: etcdPath},
		},
	}
	cfg, err := k.env.Start()
	if err != nil {
		t.Fatalf("peer: start kube-apiserver (%s) and etcd: %v", apiserverPath, err)
	}
	t.Cleanup(func() {
		if err := k.env.Stop(); err != nil {
			t.Errorf("peer: stop kube-apiserver and etcd: %v", err)
		}
	})
	k.Config = cfg
	k.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(k.Kubeconfig, k.env.KubeConfig, 0o600); err != nil {
		t.Fatalf("peer: write kubeconfig: %v", err)
	}
	return k
}

// Stop stops the apiserver (etcd keeps the data), so the cluster is
// unreachable until Restart.
func (k *Kube) Stop(t testing.TB) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return
	}
	if err := k.env.ControlPlane.APIServer.Stop(); err != nil {
		t.Fatalf("peer: stop kube-apiserver: %v", err)
	}
	k.stopped = true
}

// Restart starts the apiserver stopped by Stop again, on the same address
// and with the same credentials and data.
func (k *Kube) Restart(t testing.TB) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.stopped {
		return
	}
	if err := k.env.ControlPlane.APIServer.Start(); err != nil {
		t.Fatalf("peer: restart kube-apiserver: %v", err)
	}
	k.stopped = false
}

// Request is one write request as the apiserver recorded it.
type Request struct {
	Verb      string
	User      string
	Resource  string
	Namespace string
	Name      string
}

// Writes returns every write request the apiserver has received so far, in
// order, except its own.
func (k *Kube) Writes(t testing.TB) []Request {
	t.Helper()
	raw, err := os.ReadFile(k.auditLog)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("peer: read audit log: %v", err)
	}
	var out []Request
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var ev struct {
			Verb string `json:"verb"`
			User struct {
				Username string `json:"username"`
			} `json:"user"`
			ObjectRef struct {
				Resource  string `json:"resource"`
				Namespace string `json:"namespace"`
				Name      string `json:"name"`
			} `json:"objectRef"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("peer: audit log line: %v", err)
		}
		out = append(out, Request{
			Verb: ev.Verb, User: ev.User.Username,
			Resource: ev.ObjectRef.Resource, Namespace: ev.ObjectRef.Namespace, Name: ev.ObjectRef.Name,
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("peer: read audit log: %v", err)
	}
	return out
}

// WriteCount counts the write requests to one resource (for example
// "secrets") received so far.
func (k *Kube) WriteCount(t testing.TB, resource string) int {
	t.Helper()
	n := 0
	for _, r := range k.Writes(t) {
		if r.Resource == resource {
			n++
		}
	}
	return n
}
