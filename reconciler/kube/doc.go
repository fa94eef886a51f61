// Package kube applies certops' Secrets to Kubernetes clusters with
// client-go (server-side apply, or a create for a new Secret), and prunes the ones certops no longer wants.
//
// A Cluster is one API server reached through the pod's service account, a
// kubeconfig file and context, or kubeconfig bytes the caller decrypted in
// memory. Cluster.Apply writes each Desired Secret with field manager
// "certops", the labels app.kubernetes.io/managed-by=certops and
// certops.dev/certificate=<name>, and a certops.dev/content-hash annotation
// over everything it sets. It lists certops' Secrets once per namespace and
// writes only what differs, so a pass over an up-to-date cluster makes no
// write request. A Desired may carry its data lazily (Load) with a Source
// naming it (the Git blob id of its encrypted file, recorded in the
// certops.dev/source-blob annotation): a live Secret that names the same
// Source and still matches its content hash is Unchanged without loading,
// so an unchanged pass decrypts nothing. A Secret that does not exist yet
// is created with a plain create, which costs the API server less than an
// apply (a cluster rebuilt from Git gets thousands at once); its fields are
// moved to certops' apply entry before a later write drops any of them, so
// a label or data key the spec stops setting is removed as after an apply.
// A Secret of the same name that certops does not manage — no
// certops label, or its data owned by another field manager such as
// cert-manager — is left alone and reported as a Conflict, unless the
// Desired says TakeOver. Cluster.Prune deletes Secrets labelled as certops'
// that are no longer wanted, and nothing else; it is opt-in per cluster.
//
// Cluster.RecordEvent writes a core/v1 Event about one of certops' Secrets
// (Issued, Renewed, Reissued, IssuanceFailed), as kubectl describe shows.
//
// Fleet applies to many clusters in parallel; a cluster that is unreachable
// or forbids the write is reported with a typed error and retried with
// backoff while the others proceed.
//
// OutputData derives the extra Secret keys a certificate may ask for
// (PKCS#12 and JKS keystores, tls-combined.pem, key.der) from a keypair, and
// SecretAnnotations the cert-manager and certops annotations of a leaf; both
// are pure.
//
// What it does not do: read certops.yaml or the repository, decrypt
// kubeconfigs, issue certificates, or decide which certificates a cluster
// should hold. It imports no other certops package.
//
// Concurrency: a Cluster and a Fleet are safe for concurrent use; Fleet.Apply
// calls on one Fleet are serialised. The functions are pure and safe.
package kube
