package exec

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"certops.dev/certops/reconciler/issuer"
)

var _ issuer.Issuer = (*Issuer)(nil)

// Config configures the exec issuer.
type Config struct {
	// Command is the program and its arguments; no shell is involved.
	Command []string
	// Env is added to the clean environment, as KEY=VALUE.
	Env []string
	// Path is the PATH the command sees; default /usr/local/bin:/usr/bin:/bin.
	Path string
	// Dir is the working directory; default the daemon's.
	Dir string
	// Timeout bounds one run; default 1 minute.
	Timeout time.Duration
	// CAPEM, when set, is returned as the CA (ca.crt). Otherwise the last
	// certificate of the output is, when it is self-signed.
	CAPEM []byte
	// MaxOutput bounds stdout; default 1 MiB.
	MaxOutput int64
}

// NewDefaultConfig returns the defaults.
func NewDefaultConfig() *Config {
	return &Config{Path: "/usr/local/bin:/usr/bin:/bin", Timeout: time.Minute, MaxOutput: 1 << 20}
}

// Issuer runs one configured command per request.
type Issuer struct {
	cfg  Config
	prog string
}

// New validates cfg eagerly: the program must exist.
func New(cfg *Config) (*Issuer, error) {
	if cfg == nil {
		return nil, errors.New("exec: nil config")
	}
	c := *cfg
	d := NewDefaultConfig()
	if c.Path == "" {
		c.Path = d.Path
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.MaxOutput <= 0 {
		c.MaxOutput = d.MaxOutput
	}
	var errs []error
	if len(c.Command) == 0 {
		return nil, errors.New("exec: command is empty")
	}
	prog, err := exec.LookPath(c.Command[0])
	if err != nil {
		errs = append(errs, fmt.Errorf("exec: command %q: %w", c.Command[0], err))
	}
	for _, e := range c.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			errs = append(errs, fmt.Errorf("exec: env entry %q is not KEY=VALUE", k))
		}
	}
	if len(c.CAPEM) > 0 {
		if _, err := issuer.ParseCertificatesPEM(c.CAPEM); err != nil {
			errs = append(errs, fmt.Errorf("exec: ca: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Issuer{cfg: c, prog: prog}, nil
}

// Sign runs the command for req.
func (i *Issuer) Sign(ctx context.Context, req *issuer.Request) (*issuer.Result, error) {
	if err := issuer.ContextErr(ctx, "exec: sign "+req.Name); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, i.cfg.Timeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, i.prog, i.cfg.Command[1:]...)
	cmd.Dir = i.cfg.Dir
	cmd.Env = append([]string{"PATH=" + i.cfg.Path}, i.cfg.Env...)
	cmd.Env = append(cmd.Env,
		"CERTOPS_CERT_NAME="+req.Name,
		"CERTOPS_DURATION_SECONDS="+strconv.FormatInt(int64(req.Duration/time.Second), 10),
		"CERTOPS_DURATION_DAYS="+strconv.FormatInt(int64((req.Duration+24*time.Hour-1)/(24*time.Hour)), 10),
		"CERTOPS_IS_CA="+strconv.FormatBool(req.IsCA),
		"CERTOPS_KEY_USAGES="+strings.Join(keyUsageNames(req.Usages), ","),
		"CERTOPS_EXT_KEY_USAGES="+strings.Join(extKeyUsageNames(req.ExtKeyUsages), ","),
	)
	cmd.Stdin = bytes.NewReader(req.CSRPEM())
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitedWriter{w: &stdout, n: i.cfg.MaxOutput}
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	killGroup(cmd)
	// Children that keep stdout open must not hold Sign after a kill.
	cmd.WaitDelay = time.Second

	err := cmd.Run()
	if cerr := ctx.Err(); cerr != nil {
		return nil, issuer.Transient(fmt.Errorf("exec: %s: %s: %w", req.Name, i.cfg.Command[0], cerr))
	}
	if err != nil {
		return nil, classify(fmt.Errorf("exec: %s: %s: %w%s", req.Name, i.cfg.Command[0], err, lastLine(stderr.Bytes())), err)
	}
	res, err := issuer.NewResult(stdout.Bytes(), i.cfg.CAPEM)
	if err != nil {
		return nil, issuer.Permanent(fmt.Errorf("exec: %s: output of %s: %w", req.Name, i.cfg.Command[0], err))
	}
	if !issuer.SamePublicKey(res.Leaf().PublicKey, req.CSR.PublicKey) {
		return nil, issuer.Permanent(fmt.Errorf("exec: %s: %s returned a certificate for another key", req.Name, i.cfg.Command[0]))
	}
	if len(res.CAPEM) == 0 {
		if last := res.Chain[len(res.Chain)-1]; len(res.Chain) > 1 && isSelfSigned(last) {
			res.CAPEM = issuer.EncodeCertificatesPEM([]*x509.Certificate{last})
		}
	}
	return res, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

func classify(wrapped, err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		switch ee.ExitCode() {
		case 64, 65, 77, 78: // EX_USAGE, EX_DATAERR, EX_NOPERM, EX_CONFIG
			return issuer.Permanent(wrapped)
		}
	}
	return issuer.Transient(wrapped)
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if l == "" {
		return ""
	}
	if len(l) > 200 {
		l = l[:200] + "…"
	}
	return ": " + l
}

type limitedWriter struct {
	w io.Writer
	n int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		return 0, errors.New("exec: output too large")
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}

var kuNames = []struct {
	u    x509.KeyUsage
	name string
}{
	{x509.KeyUsageDigitalSignature, "digital signature"}, {x509.KeyUsageContentCommitment, "content commitment"},
	{x509.KeyUsageKeyEncipherment, "key encipherment"}, {x509.KeyUsageKeyAgreement, "key agreement"},
	{x509.KeyUsageDataEncipherment, "data encipherment"}, {x509.KeyUsageCertSign, "cert sign"},
	{x509.KeyUsageCRLSign, "crl sign"}, {x509.KeyUsageEncipherOnly, "encipher only"}, {x509.KeyUsageDecipherOnly, "decipher only"},
}

var ekuNames = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageAny: "any", x509.ExtKeyUsageServerAuth: "server auth", x509.ExtKeyUsageClientAuth: "client auth",
	x509.ExtKeyUsageCodeSigning: "code signing", x509.ExtKeyUsageEmailProtection: "email protection",
	x509.ExtKeyUsageIPSECEndSystem: "ipsec end system", x509.ExtKeyUsageIPSECTunnel: "ipsec tunnel",
	x509.ExtKeyUsageIPSECUser: "ipsec user", x509.ExtKeyUsageTimeStamping: "timestamping",
	x509.ExtKeyUsageOCSPSigning: "ocsp signing", x509.ExtKeyUsageMicrosoftServerGatedCrypto: "microsoft sgc",
	x509.ExtKeyUsageNetscapeServerGatedCrypto: "netscape sgc",
}

func keyUsageNames(ku x509.KeyUsage) []string {
	var out []string
	for _, k := range kuNames {
		if ku&k.u != 0 {
			out = append(out, k.name)
		}
	}
	return out
}

func extKeyUsageNames(ekus []x509.ExtKeyUsage) []string {
	var out []string
	for _, e := range ekus {
		if n, ok := ekuNames[e]; ok {
			out = append(out, n)
		}
	}
	return out
}
