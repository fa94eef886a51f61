// Package vault is the vault issuer: it signs CSRs through the sign
// endpoint of a HashiCorp Vault (or OpenBao) PKI secrets engine,
// POST /v1/<mount>/sign/<role>. The role decides what may be issued (names,
// TTL limits, key usages); Vault's refusals are permanent errors.
//
// Authentication: a static token, AppRole (role_id + secret_id) or
// Kubernetes (a service-account JWT), with an optional Vault Enterprise
// namespace and a CA bundle for Vault's TLS certificate. Login tokens are
// cached until shortly before their lease ends and renewed by logging in
// again; a 403 triggers one fresh login.
//
// Kubernetes auth reads the service-account token from Kubernetes.TokenFile
// (default TokenPath) at every login, because kubelet rotates projected
// tokens; Vault checks it with a TokenReview at the apiserver.
//
// Namespace sends X-Vault-Namespace on every request, login included.
// Namespaces exist in Vault Enterprise and OpenBao only: open-source Vault
// ignores the header and serves the root namespace (its sys/namespaces
// endpoint answers 404), so a namespaced spec against it silently uses the
// root's mounts.
//
// It speaks Vault's documented HTTP API with net/http rather than
// github.com/hashicorp/vault/api: four endpoints, full control of contexts
// and errors, and no global configuration from VAULT_* variables.
//
// An Issuer is safe for concurrent use. Every HTTP request to Vault is
// reported to Config.OnRequest.
package vault
