package gitsource

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

// Auth holds the credentials of a remote, with the field names of a Flux Git
// auth Secret. Which fields apply depends on the URL scheme: HTTP(S) uses
// Username/Password (a token goes in Password), BearerToken, CA, CertPEM and
// KeyPEM; SSH uses Identity (with an optional Password as its passphrase) and
// KnownHosts, which is required.
type Auth struct {
	Username    string
	Password    string
	BearerToken string
	Identity    []byte // PEM private key for SSH
	KnownHosts  []byte
	CA          []byte // ca.crt: extra roots for HTTPS
	CertPEM     []byte // tls.crt: client certificate for HTTPS
	KeyPEM      []byte // tls.key
}

// The file names of a Flux Git auth Secret, mounted as a directory.
const (
	fileUsername    = "username"
	filePassword    = "password"
	fileBearerToken = "bearerToken"
	fileIdentity    = "identity"
	fileKnownHosts  = "known_hosts"
	fileCA          = "ca.crt"
	fileCert        = "tls.crt"
	fileKey         = "tls.key"
	// caFile is the older Flux name of ca.crt; it is still read.
	fileCALegacy = "caFile"
)

// LoadAuth reads credentials from dir laid out like a mounted Flux Git auth
// Secret (one file per key). Missing files are left empty; an empty dir
// argument gives empty credentials.
func LoadAuth(dir string) (*Auth, error) {
	a := &Auth{}
	if dir == "" {
		return a, nil
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("gitsource: auth directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("gitsource: auth directory %s is not a directory", dir)
	}
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("gitsource: auth file %s: %w", name, err)
		}
		return b, nil
	}
	var errs []error
	str := func(name string) string {
		b, err := read(name)
		errs = append(errs, err)
		// Secrets written with `echo` end in a newline that is not part of
		// the credential.
		return strings.TrimRight(string(b), "\r\n")
	}
	raw := func(name string) []byte {
		b, err := read(name)
		errs = append(errs, err)
		return b
	}
	a.Username = str(fileUsername)
	a.Password = str(filePassword)
	a.BearerToken = str(fileBearerToken)
	a.Identity = raw(fileIdentity)
	a.KnownHosts = raw(fileKnownHosts)
	a.CA = raw(fileCA)
	if len(a.CA) == 0 {
		a.CA = raw(fileCALegacy)
	}
	a.CertPEM = raw(fileCert)
	a.KeyPEM = raw(fileKey)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return a, nil
}

// secrets lists the credential strings that must never be printed.
func (a *Auth) secrets() secrets {
	if a == nil {
		return nil
	}
	return secrets{a.Password, a.BearerToken}
}

// endpoint is a parsed remote with its transport credentials.
type endpoint struct {
	url        string // without user-info for HTTP(S)
	redacted   string
	auth       transport.AuthMethod
	caBundle   []byte
	clientCert []byte
	clientKey  []byte
	secrets    secrets
}

// newEndpoint validates rawURL against the credentials and builds the
// go-git auth method. User-info in an HTTP(S) URL is moved into basic auth
// so that it is never stored in the cache's configuration or printed.
func newEndpoint(rawURL string, a *Auth, cacheDir string) (*endpoint, error) {
	if a == nil {
		a = &Auth{}
	}
	e := &endpoint{redacted: RedactURL(rawURL), secrets: a.secrets()}
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		return nil, fmt.Errorf("gitsource: remote url %s: invalid", e.redacted)
	}
	if ep.Password != "" {
		e.secrets = append(e.secrets, ep.Password, url.QueryEscape(ep.Password), url.PathEscape(ep.Password))
	}
	switch ep.Protocol {
	case "http", "https":
		user, pass := a.Username, a.Password
		if user == "" && pass == "" && (ep.User != "" || ep.Password != "") {
			user, pass = ep.User, ep.Password
		}
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("gitsource: remote url %s: invalid", e.redacted)
		}
		u.User = nil
		e.url = u.String()
		switch {
		case a.BearerToken != "":
			e.auth = &githttp.TokenAuth{Token: a.BearerToken}
		case user != "" || pass != "":
			if user == "" {
				// A token used as password still needs a user name; Git
				// hosts ignore its value.
				user = "git"
			}
			e.auth = &githttp.BasicAuth{Username: user, Password: pass}
		}
		if ep.Protocol == "http" && (len(a.CertPEM) > 0 || len(a.CA) > 0) {
			return nil, fmt.Errorf("gitsource: remote url %s: tls.crt and ca.crt need an https url", e.redacted)
		}
		if (len(a.CertPEM) > 0) != (len(a.KeyPEM) > 0) {
			return nil, fmt.Errorf("gitsource: client certificate needs both tls.crt and tls.key")
		}
		e.caBundle, e.clientCert, e.clientKey = a.CA, a.CertPEM, a.KeyPEM
	case "ssh":
		e.url = rawURL
		if len(a.Identity) == 0 {
			return nil, fmt.Errorf("gitsource: remote url %s: ssh needs an identity", e.redacted)
		}
		if len(a.KnownHosts) == 0 {
			return nil, fmt.Errorf("gitsource: remote url %s: ssh needs known_hosts", e.redacted)
		}
		var signer ssh.Signer
		if a.Password != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase(a.Identity, []byte(a.Password))
		} else {
			signer, err = ssh.ParsePrivateKey(a.Identity)
		}
		if err != nil {
			// The parser's message never quotes key material, but keep it
			// generic anyway.
			var missing *ssh.PassphraseMissingError
			if errors.As(err, &missing) {
				return nil, fmt.Errorf("gitsource: ssh identity is encrypted and no password was given")
			}
			return nil, fmt.Errorf("gitsource: ssh identity: cannot parse private key")
		}
		user := ep.User
		if user == "" {
			user = "git"
		}
		hk, err := hostKeyCheck(a.KnownHosts, cacheDir, ep)
		if err != nil {
			return nil, err
		}
		e.auth = &gitssh.PublicKeys{User: user, Signer: signer, HostKeyCallbackHelper: hk}
	case "file":
		e.url = rawURL
	default:
		return nil, fmt.Errorf("gitsource: remote url %s: unsupported scheme %q", e.redacted, ep.Protocol)
	}
	return e, nil
}

// hostKeyCheck builds a strict known_hosts check: unknown and changed keys
// are both refused. known_hosts is public data; it is written next to the
// cache so that the tested x/crypto parser (hashed hosts, wildcards,
// @revoked, @cert-authority) does the matching.
func hostKeyCheck(knownHosts []byte, cacheDir string, ep *transport.Endpoint) (gitssh.HostKeyCallbackHelper, error) {
	p := filepath.Join(cacheDir, "known_hosts")
	if err := os.WriteFile(p, knownHosts, 0o644); err != nil {
		return gitssh.HostKeyCallbackHelper{}, fmt.Errorf("gitsource: known_hosts: %w", err)
	}
	db, err := knownhosts.NewDB(p)
	if err != nil {
		return gitssh.HostKeyCallbackHelper{}, fmt.Errorf("gitsource: known_hosts: %w", err)
	}
	port := ep.Port
	if port == 0 {
		port = 22
	}
	hostPort := net.JoinHostPort(ep.Host, fmt.Sprint(port))
	return gitssh.HostKeyCallbackHelper{
		HostKeyCallback: db.HostKeyCallback(),
		// Offer only the algorithms known_hosts holds a key for, so a server
		// with several host keys presents one we can check.
		HostKeyAlgorithms: db.HostKeyAlgorithms(hostPort),
	}, nil
}
