package spec

// API groups and kinds certops reads.
const (
	// Group is certops' own API group; APIVersion is the version this
	// package reads and writes.
	Group      = "certops.dev"
	APIVersion = Group + "/v1alpha1"

	// CertManagerAPIVersion is cert-manager's, whose Certificate, Issuer and
	// ClusterIssuer manifests load unchanged so users can migrate by copying.
	CertManagerAPIVersion = "cert-manager.io/v1"

	KindConfig        = "Config"
	KindCertificate   = "Certificate"
	KindIssuer        = "Issuer"
	KindClusterIssuer = "ClusterIssuer"
)

// TypeMeta is the apiVersion/kind pair every document starts with.
type TypeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// ObjectMeta is the subset of Kubernetes object metadata a spec may carry.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Source says where a document was read from, for error messages.
type Source struct {
	File string // slash-separated path inside the repository
	Line int    // line of the document's first key
}

// Certificate asks for one certificate and names where its Secret goes.
type Certificate struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta      `json:"metadata"`
	Spec     CertificateSpec `json:"spec"`

	Source Source `json:"-"`
	key    string // Key, as Load decoded it
}

// CertificateSpec follows cert-manager's cert-manager.io/v1 CertificateSpec
// field for field, plus certops' Targets and RenewalWindows.
type CertificateSpec struct {
	SecretName     string          `json:"secretName,omitempty"`
	SecretTemplate *SecretTemplate `json:"secretTemplate,omitempty"`

	CommonName     string       `json:"commonName,omitempty"`
	LiteralSubject string       `json:"literalSubject,omitempty"`
	Subject        *X509Subject `json:"subject,omitempty"`
	DNSNames       []string     `json:"dnsNames,omitempty"`
	IPAddresses    []string     `json:"ipAddresses,omitempty"`
	URIs           []string     `json:"uris,omitempty"`
	EmailAddresses []string     `json:"emailAddresses,omitempty"`
	// OtherNames are otherName SANs with UTF-8 string values (for example
	// a Microsoft UPN, OID 1.3.6.1.4.1.311.20.2.3).
	OtherNames []OtherName `json:"otherNames,omitempty"`

	Duration              *Duration `json:"duration,omitempty"`
	RenewBefore           *Duration `json:"renewBefore,omitempty"`
	RenewBeforePercentage *int32    `json:"renewBeforePercentage,omitempty"`

	IsCA            bool             `json:"isCA,omitempty"`
	Usages          []KeyUsage       `json:"usages,omitempty"`
	PrivateKey      *PrivateKey      `json:"privateKey,omitempty"`
	IssuerRef       IssuerRef        `json:"issuerRef"`
	NameConstraints *NameConstraints `json:"nameConstraints,omitempty"`

	// Keystores and AdditionalOutputFormats add extra keys to the Secret
	// applied to clusters; they do not change what is issued.
	Keystores               *Keystores               `json:"keystores,omitempty"`
	AdditionalOutputFormats []AdditionalOutputFormat `json:"additionalOutputFormats,omitempty"`

	// RevisionHistoryLimit is accepted for cert-manager compatibility and
	// has no effect: Git keeps every revision.
	RevisionHistoryLimit *int32 `json:"revisionHistoryLimit,omitempty"`

	// Targets lists the clusters and namespaces that receive the Secret.
	// Empty means the clusters marked default in certops.yaml, in the
	// certificate's own namespace; with no default cluster the certificate
	// lives only in Git (consumed by Flux or Argo CD from the repository).
	Targets []Target `json:"targets,omitempty"`

	// RenewalWindows restrict when a renewal may start (for example
	// maintenance hours). Issuing a missing or expired certificate ignores
	// them.
	RenewalWindows []RenewalWindow `json:"renewalWindows,omitempty"`
}

// OtherName is one otherName SAN: an OID and a UTF-8 string value.
type OtherName struct {
	OID       string `json:"oid"`
	UTF8Value string `json:"utf8Value"`
}

// SecretTemplate adds labels and annotations to the Secret in clusters.
type SecretTemplate struct {
	Annotations map[string]string `json:"annotations,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// X509Subject is cert-manager's subject block.
type X509Subject struct {
	Organizations       []string `json:"organizations,omitempty"`
	Countries           []string `json:"countries,omitempty"`
	OrganizationalUnits []string `json:"organizationalUnits,omitempty"`
	Localities          []string `json:"localities,omitempty"`
	Provinces           []string `json:"provinces,omitempty"`
	StreetAddresses     []string `json:"streetAddresses,omitempty"`
	PostalCodes         []string `json:"postalCodes,omitempty"`
	SerialNumber        string   `json:"serialNumber,omitempty"`
}

// PrivateKey chooses the key; cert-manager's names and defaults.
type PrivateKey struct {
	RotationPolicy RotationPolicy `json:"rotationPolicy,omitempty"`
	Encoding       KeyEncoding    `json:"encoding,omitempty"`
	Algorithm      KeyAlgorithm   `json:"algorithm,omitempty"`
	Size           int            `json:"size,omitempty"`
}

// KeyAlgorithm is RSA, ECDSA or Ed25519.
type KeyAlgorithm string

// Key algorithms.
const (
	RSA     KeyAlgorithm = "RSA"
	ECDSA   KeyAlgorithm = "ECDSA"
	Ed25519 KeyAlgorithm = "Ed25519"
)

// KeyEncoding is the PEM form of the private key.
type KeyEncoding string

// Key encodings.
const (
	PKCS1 KeyEncoding = "PKCS1"
	PKCS8 KeyEncoding = "PKCS8"
)

// RotationPolicy says whether a re-issue makes a new key.
type RotationPolicy string

// Rotation policies.
const (
	RotationAlways RotationPolicy = "Always"
	RotationNever  RotationPolicy = "Never"
)

// IssuerRef names the issuer of a certificate. Kind is Issuer or
// ClusterIssuer (both resolve to the repository's issuers/); Group is
// certops.dev, cert-manager.io or empty.
type IssuerRef struct {
	Name  string `json:"name"`
	Kind  string `json:"kind,omitempty"`
	Group string `json:"group,omitempty"`
}

// NameConstraints is cert-manager's name constraints block (CA only).
type NameConstraints struct {
	Critical  bool                `json:"critical,omitempty"`
	Permitted *NameConstraintItem `json:"permitted,omitempty"`
	Excluded  *NameConstraintItem `json:"excluded,omitempty"`
}

// NameConstraintItem lists constrained names of each kind.
type NameConstraintItem struct {
	DNSDomains     []string `json:"dnsDomains,omitempty"`
	IPRanges       []string `json:"ipRanges,omitempty"`
	EmailAddresses []string `json:"emailAddresses,omitempty"`
	URIDomains     []string `json:"uriDomains,omitempty"`
}

// Keystores asks for PKCS#12 and JKS keystores in the applied Secret.
type Keystores struct {
	JKS    *Keystore `json:"jks,omitempty"`
	PKCS12 *Keystore `json:"pkcs12,omitempty"`
}

// Keystore is one keystore output; the password comes from a Secret that
// already exists in each target namespace.
type Keystore struct {
	Create            bool              `json:"create"`
	PasswordSecretRef SecretKeySelector `json:"passwordSecretRef"`
	Alias             string            `json:"alias,omitempty"`
	Profile           string            `json:"profile,omitempty"`
}

// SecretKeySelector names one key of a Secret.
type SecretKeySelector struct {
	Name string `json:"name"`
	Key  string `json:"key,omitempty"`
}

// AdditionalOutputFormat adds tls-combined.pem (CombinedPEM) or key.der (DER).
type AdditionalOutputFormat struct {
	Type string `json:"type"`
}

// Target is one cluster and the namespaces in it that receive the Secret.
type Target struct {
	Cluster    string   `json:"cluster"`
	Namespaces []string `json:"namespaces,omitempty"`
	// SecretName overrides spec.secretName in this target.
	SecretName string `json:"secretName,omitempty"`
	// TakeOver lets certops manage a Secret of that name that another
	// manager created. Off by default: such a Secret is left alone.
	TakeOver bool `json:"takeOver,omitempty"`
}

// RenewalWindow is a weekly window in which renewals may start.
type RenewalWindow struct {
	Days     []string `json:"days"`
	Start    string   `json:"start"` // HH:MM
	End      string   `json:"end"`   // HH:MM, after Start; 24:00 allowed
	TimeZone string   `json:"timeZone,omitempty"`
}

// Issuer configures one issuing backend. Exactly one of the backend blocks
// is set.
type Issuer struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     IssuerSpec `json:"spec"`

	Source Source `json:"-"`
}

// IssuerSpec holds the backend blocks; cert-manager's names where it has
// them.
type IssuerSpec struct {
	ACME       *ACMEIssuer       `json:"acme,omitempty"`
	CA         *CAIssuer         `json:"ca,omitempty"`
	SelfSigned *SelfSignedIssuer `json:"selfSigned,omitempty"`
	Vault      *VaultIssuer      `json:"vault,omitempty"`
	Exec       *ExecIssuer       `json:"exec,omitempty"`

	// MaxConcurrent bounds the issuances in flight at this issuer.
	MaxConcurrent int `json:"maxConcurrent,omitempty"`
}

// Type names the backend that is set ("" when none is).
func (s IssuerSpec) Type() string {
	switch {
	case s.ACME != nil:
		return "acme"
	case s.CA != nil:
		return "ca"
	case s.SelfSigned != nil:
		return "selfSigned"
	case s.Vault != nil:
		return "vault"
	case s.Exec != nil:
		return "exec"
	}
	return ""
}

// ACMEIssuer is an ACME (RFC 8555) account at one server.
type ACMEIssuer struct {
	Server         string `json:"server"`
	Email          string `json:"email,omitempty"`
	PreferredChain string `json:"preferredChain,omitempty"`
	// Profile names the ACME profile to order (for example "tlsserver" or
	// "shortlived").
	Profile       string `json:"profile,omitempty"`
	CABundle      string `json:"caBundle,omitempty"` // base64 PEM, like cert-manager
	SkipTLSVerify bool   `json:"skipTLSVerify,omitempty"`
	// DisableAccountKeyGeneration and PrivateKeySecretRef are cert-manager's;
	// certops keeps the account key SOPS-encrypted in the repository under
	// secrets/acme/<issuer>.yaml, and takes PrivateKeySecretRef.Name as that
	// file's Secret name when set.
	PrivateKeySecretRef         *SecretKeySelector      `json:"privateKeySecretRef,omitempty"`
	DisableAccountKeyGeneration bool                    `json:"disableAccountKeyGeneration,omitempty"`
	ExternalAccountBinding      *ExternalAccountBinding `json:"externalAccountBinding,omitempty"`
	Solvers                     []ACMESolver            `json:"solvers,omitempty"`
	// EnableDurationFeature sends the requested duration in the order.
	EnableDurationFeature bool `json:"enableDurationFeature,omitempty"`
}

// ExternalAccountBinding ties the account to one at the CA. The HMAC key is
// read by the daemon from KeyFile or the environment variable KeyEnv, never
// from the repository in clear text.
type ExternalAccountBinding struct {
	KeyID        string             `json:"keyID"`
	KeySecretRef *SecretKeySelector `json:"keySecretRef,omitempty"`
	KeyFile      string             `json:"keyFile,omitempty"`
	KeyEnv       string             `json:"keyEnv,omitempty"`
	KeyAlgorithm string             `json:"keyAlgorithm,omitempty"`
}

// ACMESolver solves challenges for the names its selector matches.
type ACMESolver struct {
	Selector *SolverSelector `json:"selector,omitempty"`
	HTTP01   *HTTP01Solver   `json:"http01,omitempty"`
	DNS01    *DNS01Solver    `json:"dns01,omitempty"`
}

// SolverSelector limits a solver to some names; cert-manager's semantics.
type SolverSelector struct {
	DNSNames    []string          `json:"dnsNames,omitempty"`
	DNSZones    []string          `json:"dnsZones,omitempty"`
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// HTTP01Solver answers HTTP-01 on certops' own challenge listener. The
// cert-manager ingress and gatewayHTTPRoute blocks are accepted so issuers
// load unchanged; their routing to the listener is the user's.
type HTTP01Solver struct {
	Ingress          *HTTP01Ingress `json:"ingress,omitempty"`
	GatewayHTTPRoute map[string]any `json:"gatewayHTTPRoute,omitempty"`
}

// HTTP01Ingress is cert-manager's ingress solver block.
type HTTP01Ingress struct {
	Class            string `json:"class,omitempty"`
	IngressClassName string `json:"ingressClassName,omitempty"`
	Name             string `json:"name,omitempty"`
	ServiceType      string `json:"serviceType,omitempty"`
}

// DNS01Solver presents DNS-01 records through a lego DNS provider chosen by
// name. Settings holds the provider's non-secret settings (lego's
// environment variable names without the provider prefix, e.g. NAMESERVER);
// credentials come from the daemon's environment or files.
type DNS01Solver struct {
	Provider string            `json:"provider,omitempty"`
	Settings map[string]string `json:"settings,omitempty"`
	// Nameservers used to check propagation; empty means the system's.
	Nameservers []string `json:"nameservers,omitempty"`
	// DisablePropagationCheck skips waiting for the record to be visible.
	DisablePropagationCheck bool `json:"disablePropagationCheck,omitempty"`
	// cert-manager's in-tree provider blocks; each maps onto a provider.
	RFC2136      *RFC2136Provider `json:"rfc2136,omitempty"`
	Route53      map[string]any   `json:"route53,omitempty"`
	Cloudflare   map[string]any   `json:"cloudflare,omitempty"`
	CloudDNS     map[string]any   `json:"cloudDNS,omitempty"`
	AzureDNS     map[string]any   `json:"azureDNS,omitempty"`
	DigitalOcean map[string]any   `json:"digitalocean,omitempty"`
	ACMEDNS      map[string]any   `json:"acmeDNS,omitempty"`
}

// RFC2136Provider is cert-manager's rfc2136 block (lego's dnsupdate).
type RFC2136Provider struct {
	Nameserver          string             `json:"nameserver"`
	TSIGKeyName         string             `json:"tsigKeyName,omitempty"`
	TSIGAlgorithm       string             `json:"tsigAlgorithm,omitempty"`
	TSIGSecretSecretRef *SecretKeySelector `json:"tsigSecretSecretRef,omitempty"`
}

// CAIssuer signs with a CA keypair kept SOPS-encrypted in the repository:
// SecretName names a Secret certops owns (for example a self-signed root's),
// File a path in the repository.
type CAIssuer struct {
	SecretName             string   `json:"secretName,omitempty"`
	File                   string   `json:"file,omitempty"`
	CRLDistributionPoints  []string `json:"crlDistributionPoints,omitempty"`
	OCSPServers            []string `json:"ocspServers,omitempty"`
	IssuingCertificateURLs []string `json:"issuingCertificateURLs,omitempty"`
}

// SelfSignedIssuer signs each certificate with its own key.
type SelfSignedIssuer struct {
	CRLDistributionPoints []string `json:"crlDistributionPoints,omitempty"`
}

// VaultIssuer signs through Vault's PKI sign endpoint.
type VaultIssuer struct {
	Server    string    `json:"server"`
	Path      string    `json:"path"` // e.g. pki/sign/example-dot-com
	Namespace string    `json:"namespace,omitempty"`
	CABundle  string    `json:"caBundle,omitempty"` // base64 PEM
	Auth      VaultAuth `json:"auth"`
}

// VaultAuth picks one way to log in. Secrets are files on the daemon's host.
type VaultAuth struct {
	Token      *VaultTokenAuth      `json:"token,omitempty"`
	AppRole    *VaultAppRoleAuth    `json:"appRole,omitempty"`
	Kubernetes *VaultKubernetesAuth `json:"kubernetes,omitempty"`
}

// VaultTokenAuth reads a token from a file or an environment variable.
type VaultTokenAuth struct {
	File string `json:"file,omitempty"`
	Env  string `json:"env,omitempty"`
}

// VaultAppRoleAuth logs in with a role ID and a secret ID read from a file.
type VaultAppRoleAuth struct {
	Path         string `json:"path,omitempty"` // default "approle"
	RoleID       string `json:"roleId"`
	SecretIDFile string `json:"secretIdFile,omitempty"`
	SecretIDEnv  string `json:"secretIdEnv,omitempty"`
}

// VaultKubernetesAuth logs in with a service account token.
type VaultKubernetesAuth struct {
	Role      string `json:"role"`
	MountPath string `json:"mountPath,omitempty"` // default /v1/auth/kubernetes
	TokenFile string `json:"tokenFile,omitempty"` // default the pod's token
}

// ExecIssuer runs a command with the CSR (PEM) on stdin and reads the chain
// (PEM, leaf first) from stdout.
type ExecIssuer struct {
	Command []string          `json:"command"`
	Timeout *Duration         `json:"timeout,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
}

// Config is the repository's certops.yaml.
type Config struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata,omitempty"`
	Spec     ConfigSpec `json:"spec"`

	Source Source `json:"-"`
}

// ConfigSpec holds the repository-wide settings.
type ConfigSpec struct {
	Clusters []Cluster `json:"clusters,omitempty"`
	Output   Output    `json:"output,omitempty"`
	Commit   Commit    `json:"commit,omitempty"`
	Policy   *Policy   `json:"policy,omitempty"`
}

// Cluster is one Kubernetes cluster Secrets are applied to.
type Cluster struct {
	Name string `json:"name"`
	// Exactly one way to reach it.
	InCluster  bool        `json:"inCluster,omitempty"`
	Kubeconfig *Kubeconfig `json:"kubeconfig,omitempty"`
	// Namespaces certops may write to; empty means any.
	Namespaces []string `json:"namespaces,omitempty"`
	// Default clusters receive certificates that list no targets.
	Default bool    `json:"default,omitempty"`
	Prune   bool    `json:"prune,omitempty"`
	QPS     float32 `json:"qps,omitempty"`
	Burst   int     `json:"burst,omitempty"`
}

// Kubeconfig reaches a cluster through a kubeconfig: a file on the daemon's
// host, or a SOPS-encrypted Secret in the repository (key "kubeconfig"),
// decrypted in memory only.
type Kubeconfig struct {
	Path          string `json:"path,omitempty"`
	EncryptedFile string `json:"encryptedFile,omitempty"`
	Context       string `json:"context,omitempty"`
}

// Output says where certops writes the encrypted Secrets.
type Output struct {
	Path string `json:"path,omitempty"` // default "secrets"
}

// Commit configures the bot's commits.
type Commit struct {
	AuthorName  string `json:"authorName,omitempty"`
	AuthorEmail string `json:"authorEmail,omitempty"`
	// SubjectPrefix starts every commit subject (default "certops: ").
	SubjectPrefix string `json:"subjectPrefix,omitempty"`
}

// Policy limits what certificates may ask for, by the path of their file.
type Policy struct {
	// DefaultAction applies to certificates no rule matches: Allow
	// (default) or Deny.
	DefaultAction string       `json:"defaultAction,omitempty"`
	Rules         []PolicyRule `json:"rules"`
}

// PolicyRule constrains the certificates whose file matches Paths. Every
// rule that matches a file applies; an empty list allows anything of that
// kind.
type PolicyRule struct {
	Name          string         `json:"name,omitempty"`
	Paths         []string       `json:"paths"`
	DNSNames      []string       `json:"dnsNames,omitempty"`
	IPRanges      []string       `json:"ipRanges,omitempty"`
	Issuers       []string       `json:"issuers,omitempty"`
	Clusters      []string       `json:"clusters,omitempty"`
	Namespaces    []string       `json:"namespaces,omitempty"`
	MaxDuration   *Duration      `json:"maxDuration,omitempty"`
	KeyAlgorithms []KeyAlgorithm `json:"keyAlgorithms,omitempty"`
	MinRSASize    int            `json:"minRSASize,omitempty"`
	AllowCA       bool           `json:"allowCA,omitempty"`
}

// KeyUsage is one of cert-manager's key usage names.
type KeyUsage string

// KeyUsages lists every usage name cert-manager accepts, in its order.
var KeyUsages = []KeyUsage{
	"signing", "digital signature", "content commitment", "key encipherment",
	"key agreement", "data encipherment", "cert sign", "crl sign",
	"encipher only", "decipher only", "any", "server auth", "client auth",
	"code signing", "email protection", "s/mime", "ipsec end system",
	"ipsec tunnel", "ipsec user", "timestamping", "ocsp signing",
	"microsoft sgc", "netscape sgc",
}
