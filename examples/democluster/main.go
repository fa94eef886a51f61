// Command democluster runs a throwaway Kubernetes control plane (etcd and
// kube-apiserver, as built by `make tools`) on loopback for `make demo`, and
// lists the Secrets certops applied to it.
//
//	democluster serve -kubeconfig FILE -namespaces web,api   # until SIGTERM
//	democluster secrets -kubeconfig FILE                     # certops' Secrets
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: democluster serve|secrets -kubeconfig FILE")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file to write (serve) or read (secrets)")
	tools := fs.String("tools", toolsDir(), "folder holding kube-apiserver and etcd")
	namespaces := fs.String("namespaces", "", "namespaces to create, comma-separated (serve)")
	_ = fs.Parse(os.Args[2:])
	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "democluster: -kubeconfig is required")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(*kubeconfig, *tools, *namespaces)
	case "secrets":
		err = secrets(*kubeconfig)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "democluster:", err)
		os.Exit(1)
	}
}

func toolsDir() string {
	if d := os.Getenv("CERTOPS_TOOLS_BIN"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "certops", "tools", "bin")
}

// serve starts the control plane, writes the kubeconfig once it answers,
// and stops it on SIGINT or SIGTERM.
func serve(kubeconfig, tools, namespaces string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	useExisting := false
	env := &envtest.Environment{
		BinaryAssetsDirectory:    tools,
		UseExistingCluster:       &useExisting,
		ControlPlaneStartTimeout: 3 * time.Minute,
		ControlPlane: envtest.ControlPlane{
			APIServer: &envtest.APIServer{Path: filepath.Join(tools, "kube-apiserver")},
			Etcd:      &envtest.Etcd{Path: filepath.Join(tools, "etcd")},
		},
	}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting kube-apiserver and etcd from %s: %w", tools, err)
	}
	defer func() { _ = env.Stop() }()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for _, ns := range strings.Split(namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns == "" {
			continue
		}
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	// Written last and atomically: its presence means the cluster is ready.
	tmp := kubeconfig + ".tmp"
	if err := os.WriteFile(tmp, env.KubeConfig, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, kubeconfig); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "democluster: kube-apiserver at %s\n", cfg.Host)
	<-ctx.Done()
	return nil
}

// secrets prints the Secrets certops manages, in every namespace.
func secrets(kubeconfig string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	list, err := client.CoreV1().Secrets("").List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=certops"})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAMESPACE\tNAME\tTYPE\tKEYS\tSERIAL\tNOT AFTER")
	for _, s := range list.Items {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", s.Namespace, s.Name, s.Type, len(s.Data),
			s.Annotations["certops.dev/serial"], s.Annotations["certops.dev/not-after"])
	}
	return w.Flush()
}
