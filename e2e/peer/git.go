package peer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// Request counter keys of a Git server: one per Git service, over HTTP and SSH
// alike. An ls-remote over HTTP is one ServiceInfoRefs; over SSH it is one
// ServiceUploadPack session that sends no wants.
const (
	ServiceInfoRefs    = "info/refs"
	ServiceUploadPack  = "upload-pack"
	ServiceReceivePack = "receive-pack"
)

// GitOptions configures StartGit. The zero value serves anonymous read and
// write over HTTP, HTTPS and SSH (any client key).
type GitOptions struct {
	// Username and Password, when Username is set, are required as HTTP basic
	// auth (a token used as password is the same thing on the wire).
	Username, Password string
	// BearerToken, when set, is accepted as "Authorization: Bearer <token>"
	// and, like Git hosts do, as the basic-auth password with any user name.
	// When both basic auth and a bearer token are set, either one passes.
	BearerToken string
	// RequireClientCert makes the HTTPS listener refuse clients without a
	// certificate from ClientCertificate.
	RequireClientCert bool
	// AuthorizedKeys restricts SSH clients to these public keys; empty accepts
	// any key.
	AuthorizedKeys []ssh.PublicKey
	// SSHUser is the SSH user name clients log in as (default "git").
	SSHUser string
}

// Git is a real Git server on loopback: bare repositories under Root, served
// by `git http-backend` over HTTP and HTTPS and by git-upload-pack and
// git-receive-pack over SSH.
type Git struct {
	// Root holds the bare repositories (name.git).
	Root string
	// HTTP, HTTPS and SSH are base URLs without a repository name; use URL.
	HTTP, HTTPS, SSH string
	// CAPEM is the certificate authority of the HTTPS server (and of the
	// client certificates ClientCertificate issues).
	CAPEM []byte
	// KnownHosts is a known_hosts line for the SSH server's host key.
	KnownHosts []byte
	// HostKey is the SSH server's public host key.
	HostKey ssh.PublicKey

	bin    string
	opts   GitOptions
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	mu     sync.Mutex
	counts map[string]int
}

// StartGit starts a Git server with one empty bare repository "repo.git"
// (see CreateRepo for more). Everything stops when the test ends.
func StartGit(t testing.TB, opts GitOptions) *Git {
	t.Helper()
	if opts.SSHUser == "" {
		opts.SSHUser = "git"
	}
	g := &Git{
		Root:   t.TempDir(),
		bin:    System(t, "git"),
		opts:   opts,
		counts: map[string]int{},
	}
	g.newCA(t)

	backend := &cgi.Handler{
		Path: g.bin,
		Args: []string{"http-backend"},
		// The identity lets hooks write commits of their own.
		Env: []string{"GIT_PROJECT_ROOT=" + g.Root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_AUTHOR_NAME=Git Server Hook", "GIT_AUTHOR_EMAIL=hook@example.test",
			"GIT_COMMITTER_NAME=Git Server Hook", "GIT_COMMITTER_EMAIL=hook@example.test"},
		// http-backend's complaints (a missing repository, a refused hook)
		// reach the client in the response; the copy on stderr is noise.
		Stderr: io.Discard,
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.httpAuthorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/info/refs"):
			g.count(ServiceInfoRefs)
		case strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
			g.count(ServiceUploadPack)
		case strings.HasSuffix(r.URL.Path, "/git-receive-pack"):
			g.count(ServiceReceivePack)
		}
		backend.ServeHTTP(w, r)
	})

	quiet := log.New(io.Discard, "", 0) // refused TLS handshakes are expected in tests
	plain := httptest.NewUnstartedServer(handler)
	plain.Config.ErrorLog = quiet
	plain.Start()
	t.Cleanup(plain.Close)
	g.HTTP = plain.URL

	secure := httptest.NewUnstartedServer(handler)
	secure.TLS = g.serverTLS(t)
	secure.Config.ErrorLog = quiet
	secure.StartTLS()
	t.Cleanup(secure.Close)
	g.HTTPS = secure.URL

	g.startSSH(t)
	g.CreateRepo(t, "repo.git")
	return g
}

// URL returns the URL of repository name ("repo.git") for scheme "http",
// "https", "ssh" or "file".
func (g *Git) URL(scheme, name string) string {
	switch scheme {
	case "http":
		return g.HTTP + "/" + name
	case "https":
		return g.HTTPS + "/" + name
	case "ssh":
		return g.SSH + "/" + name
	case "file":
		return "file://" + filepath.Join(g.Root, name)
	}
	panic("peer: unknown git scheme " + scheme)
}

// Dir is the path of the bare repository name.
func (g *Git) Dir(name string) string { return filepath.Join(g.Root, name) }

// CreateRepo creates an empty bare repository (default branch main) that
// accepts pushes over HTTP.
func (g *Git) CreateRepo(t testing.TB, name string) string {
	t.Helper()
	dir := g.Dir(name)
	g.Run(t, "", "init", "--quiet", "--bare", "--initial-branch=main", dir)
	g.Run(t, dir, "config", "http.receivepack", "true")
	return dir
}

// Requests returns how many requests each service (ServiceInfoRefs,
// ServiceUploadPack, ServiceReceivePack) has served since the start or the
// last ResetRequests.
func (g *Git) Requests() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]int, len(g.counts))
	for k, v := range g.counts {
		out[k] = v
	}
	return out
}

// ResetRequests sets every request counter to zero.
func (g *Git) ResetRequests() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.counts = map[string]int{}
}

func (g *Git) count(service string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.counts[service]++
}

// InstallHook writes an executable server-side hook (for example
// "pre-receive") with the given shell script body into repository name.
func (g *Git) InstallHook(t testing.TB, name, hook, script string) {
	t.Helper()
	p := filepath.Join(g.Dir(name), "hooks", hook)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// RemoveHook deletes a hook installed with InstallHook.
func (g *Git) RemoveHook(t testing.TB, name, hook string) {
	t.Helper()
	if err := os.Remove(filepath.Join(g.Dir(name), "hooks", hook)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

// Run runs the git CLI with GitEnv in dir ("" for the current directory)
// and returns its trimmed standard output; a failure fails the test.
func (g *Git) Run(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := g.RunErr(dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// RunErr is Run returning the error (with stderr) instead of failing.
func (g *Git) RunErr(dir string, args ...string) (string, error) {
	cmd := exec.Command(g.bin, args...)
	cmd.Dir = dir
	cmd.Env = GitEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Clone clones repository name (through the file system, so it does not
// touch the request counters) into a new temporary work tree on branch.
func (g *Git) Clone(t testing.TB, name, branch string) string {
	t.Helper()
	dir := t.TempDir()
	g.Run(t, "", "clone", "--quiet", g.Dir(name), dir)
	if branch != "" {
		if _, err := g.RunErr(dir, "checkout", "--quiet", branch); err != nil {
			g.Run(t, dir, "checkout", "--quiet", "-b", branch)
		}
	}
	return dir
}

// SeedFiles commits files (path → content) on branch of repository name and
// pushes it; it returns the new commit hash.
func (g *Git) SeedFiles(t testing.TB, name, branch string, files map[string]string) string {
	t.Helper()
	dir := g.Clone(t, name, branch)
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return g.commitAndPush(t, dir, branch, "Seed files")
}

// SeedDir copies the directory src into branch of repository name, commits
// and pushes it; it returns the new commit hash.
func (g *Git) SeedDir(t testing.TB, name, branch, src string) string {
	t.Helper()
	dir := g.Clone(t, name, branch)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return g.commitAndPush(t, dir, branch, "Seed "+path.Base(filepath.ToSlash(src)))
}

func (g *Git) commitAndPush(t testing.TB, dir, branch, msg string) string {
	t.Helper()
	g.Run(t, dir, "add", "--all")
	g.Run(t, dir, "commit", "--quiet", "--allow-empty", "-m", msg)
	g.Run(t, dir, "push", "--quiet", "origin", "HEAD:refs/heads/"+branch)
	return g.Run(t, dir, "rev-parse", "HEAD")
}

// Head returns the hash branch points to in repository name, or "" when the
// branch does not exist.
func (g *Git) Head(t testing.TB, name, branch string) string {
	t.Helper()
	out, err := g.RunErr(g.Dir(name), "rev-parse", "--verify", "--quiet", "refs/heads/"+branch)
	if err != nil {
		return ""
	}
	return out
}

func (g *Git) httpAuthorized(r *http.Request) bool {
	if g.opts.Username == "" && g.opts.BearerToken == "" {
		return true
	}
	if g.opts.BearerToken != "" && r.Header.Get("Authorization") == "Bearer "+g.opts.BearerToken {
		return true
	}
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	if g.opts.BearerToken != "" && p == g.opts.BearerToken {
		return true
	}
	return g.opts.Username != "" && u == g.opts.Username && p == g.opts.Password
}

func (g *Git) newCA(t testing.TB) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "certops test git CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	g.ca, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	g.caKey = key
	g.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// issue signs a leaf certificate for server or client use with the test CA.
func (g *Git) issue(t testing.TB, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte, pair tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, g.ca, &key.PublicKey, g.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM, pair
}

// ClientCertificate issues a client certificate (PEM certificate and PKCS #8
// key) that the HTTPS listener accepts.
func (g *Git) ClientCertificate(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	c, k, _ := g.issue(t, "certops test client", x509.ExtKeyUsageClientAuth)
	return c, k
}

func (g *Git) serverTLS(t testing.TB) *tls.Config {
	t.Helper()
	_, _, pair := g.issue(t, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	pool := x509.NewCertPool()
	pool.AddCert(g.ca)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS12,
	}
	if g.opts.RequireClientCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg
}

func (g *Git) startSSH(t testing.TB) {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	g.HostKey = hostSigner.PublicKey()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if meta.User() != g.opts.SSHUser {
				return nil, fmt.Errorf("unknown user %q", meta.User())
			}
			if len(g.opts.AuthorizedKeys) == 0 {
				return nil, nil
			}
			for _, k := range g.opts.AuthorizedKeys {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					return nil, nil
				}
			}
			return nil, errors.New("key not authorized")
		},
	}
	cfg.AddHostKey(hostSigner)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	addr := ln.Addr().(*net.TCPAddr)
	g.SSH = fmt.Sprintf("ssh://%s@127.0.0.1:%d", g.opts.SSHUser, addr.Port)
	g.KnownHosts = []byte(fmt.Sprintf("[127.0.0.1]:%d %s", addr.Port, ssh.MarshalAuthorizedKey(g.HostKey)))

	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.serveSSH(conn, cfg)
			}()
		}
	}()
}

func (g *Git) serveSSH(conn net.Conn, cfg *ssh.ServerConfig) {
	defer conn.Close()
	sconn, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	defer func() { _ = sconn.Close() }()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		g.serveSession(ch, creqs)
	}
}

func (g *Git) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	var env []string
	for req := range reqs {
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if ssh.Unmarshal(req.Payload, &kv) == nil && kv.Name == "GIT_PROTOCOL" {
				env = append(env, kv.Name+"="+kv.Value)
			}
			_ = req.Reply(true, nil)
		case "exec":
			var cmd struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &cmd); err != nil {
				_ = req.Reply(false, nil)
				return
			}
			_ = req.Reply(true, nil)
			code := g.runService(ch, cmd.Command, env)
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
			return
		default:
			_ = req.Reply(false, nil)
		}
	}
}

// runService runs "git-upload-pack '/repo.git'" or "git-receive-pack ..."
// against the bare repository under Root.
func (g *Git) runService(ch ssh.Channel, command string, env []string) int {
	verb, arg, ok := strings.Cut(command, " ")
	if !ok {
		fmt.Fprintf(ch.Stderr(), "bad command\n")
		return 128
	}
	var sub string
	switch verb {
	case "git-upload-pack":
		sub = "upload-pack"
		g.count(ServiceUploadPack)
	case "git-receive-pack":
		sub = "receive-pack"
		g.count(ServiceReceivePack)
	default:
		fmt.Fprintf(ch.Stderr(), "unsupported command %q\n", verb)
		return 128
	}
	repo := strings.Trim(strings.TrimSpace(arg), "'\"")
	repo = filepath.Join(g.Root, filepath.FromSlash(path.Clean("/"+repo)))
	if fi, err := os.Stat(repo); err != nil || !fi.IsDir() {
		fmt.Fprintf(ch.Stderr(), "fatal: '%s' does not appear to be a git repository\n", arg)
		return 128
	}
	cmd := exec.Command(g.bin, sub, repo)
	cmd.Env = append(GitEnv(), env...)
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	// A pipe rather than cmd.Stdin = ch: Wait must not block on the client
	// keeping its side of the channel open after the service has finished.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 128
	}
	if err := cmd.Start(); err != nil {
		return 128
	}
	go func() {
		_, _ = io.Copy(stdin, ch)
		stdin.Close()
	}()
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		return 128
	}
	return 0
}
