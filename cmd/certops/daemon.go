package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"certops.dev/certops/gitsource"
	"certops.dev/certops/internal/gctune"
	"certops.dev/certops/reconciler"
	"certops.dev/certops/reconciler/issuer/acme"
	"certops.dev/certops/sops"
	"certops.dev/certops/spec"
)

// daemonFlags configure reconcile and run. Every flag can also be set by an
// environment variable (CERTOPS_ plus the flag name in upper case with _ for
// -) or in a config file outside the repository (--config, YAML keys named
// like the flags). Flags win over the environment, which wins over the file.
type daemonFlags struct {
	config            string
	repo              string
	branch            string
	pushBranch        string
	authDir           string
	stateDir          string
	ageIdentity       string
	trustedRecipients []string
	policyFile        string
	signingKey        string
	signingPassphrase string
	verifyKeys        string
	allowedSigners    string
	workers           int
	commitBatch       int
	allowExec         []string
	interval          time.Duration
	backoffMin        time.Duration
	backoffMax        time.Duration
	listen            string
	logFormat         string
	logLevel          string
	apply             bool
	notifyURL         string
	notifySecretFile  string
}

func (f *daemonFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "a YAML file of flag values, kept outside the repository")
	fs.StringVar(&f.repo, "repo", "", "URL of the certificate repository (https://, ssh://, file://); required")
	fs.StringVar(&f.branch, "branch", "main", "branch to track")
	fs.StringVar(&f.pushBranch, "push-branch", "", "branch to push certops' commits to (default: the tracked branch)")
	fs.StringVar(&f.authDir, "auth-dir", "", "Git credentials laid out like a Flux Git auth Secret (username, password, bearerToken, identity, known_hosts, ca.crt, tls.crt, tls.key)")
	fs.StringVar(&f.stateDir, "state-dir", defaultStateDir(), "where the clone and the backoff state persist")
	fs.StringVar(&f.ageIdentity, "age-identity", "", "age identity file to decrypt with (default: $SOPS_AGE_KEY_FILE or $SOPS_AGE_KEY)")
	fs.StringSliceVar(&f.trustedRecipients, "trusted-recipient", nil, "age recipient certops may encrypt to (repeatable; default: the identities' own recipients); a .sops.yaml naming any other is refused")
	fs.StringVar(&f.policyFile, "policy", "", "the daemon's policy file (kind: Policy); the repository can narrow it, never widen it")
	fs.StringVar(&f.signingKey, "signing-key", "", "sign certops' commits with this key: an armored OpenPGP private key or an OpenSSH private key")
	fs.StringVar(&f.signingPassphrase, "signing-passphrase-file", "", "file holding the signing key's passphrase")
	fs.StringVar(&f.verifyKeys, "verify-openpgp-keys", "", "file of armored OpenPGP public keys; when set (or --allowed-signers), unsigned or untrusted tip commits are refused")
	fs.StringVar(&f.allowedSigners, "allowed-signers", "", "SSH allowed-signers file of keys trusted to sign the tracked branch")
	fs.StringSliceVar(&f.allowExec, "allow-exec", nil, "a command exec issuers may run, as spec.exec.command[0] names it (repeatable); exec issuers naming any other are refused, since a commit alone must not run programs on this host")
	fs.IntVar(&f.workers, "workers", 0, "issuances in flight (default 2×CPUs)")
	fs.IntVar(&f.commitBatch, "commit-batch", reconciler.DefaultCommitBatch, "issued certificates per commit: a pass that issues more makes one commit and one push per batch, each named (i/n)")
	fs.DurationVar(&f.interval, "interval", time.Minute, "how often to poll the repository (jittered)")
	fs.DurationVar(&f.backoffMin, "backoff-min", reconciler.DefaultBackoffMin, "first retry delay after a failed issuance")
	fs.DurationVar(&f.backoffMax, "backoff-max", reconciler.DefaultBackoffMax, "longest retry delay")
	fs.StringVar(&f.listen, "listen", ":9402", "address of the status, metrics and webhook endpoints (run only)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&f.apply, "apply", true, "apply the Secrets to the clusters certops.yaml names (false: Git only)")
	fs.StringVar(&f.notifyURL, "notify-url", "", "POST a signed JSON event to this URL per certificate issued, renewed, reissued, removed or failed")
	fs.StringVar(&f.notifySecretFile, "notify-secret-file", "", "HMAC-SHA256 key of the --notify-url signature (header X-Certops-Signature)")
}

func defaultStateDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "certops")
	}
	return filepath.Join(os.TempDir(), "certops")
}

// resolve applies the config file and the environment to flags the user
// did not set on the command line.
func (f *daemonFlags) resolve(fs *pflag.FlagSet, getenv func(string) string) error {
	fileValues := map[string]any{}
	if f.config != "" {
		data, err := os.ReadFile(f.config)
		if err != nil {
			return fmt.Errorf("reading --config: %w", err)
		}
		if err := yaml.UnmarshalStrict(data, &fileValues); err != nil {
			return fmt.Errorf("--config %s: %w", f.config, err)
		}
	}
	var errs []error
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed || fl.Name == "config" {
			return
		}
		env := "CERTOPS_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v := getenv(env); v != "" {
			if err := fs.Set(fl.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", env, err))
			}
			return
		}
		if v, ok := fileValues[fl.Name]; ok {
			var s string
			switch t := v.(type) {
			case []any:
				parts := make([]string, len(t))
				for i, p := range t {
					parts[i] = fmt.Sprint(p)
				}
				s = strings.Join(parts, ",")
			default:
				s = fmt.Sprint(t)
			}
			if err := fs.Set(fl.Name, s); err != nil {
				errs = append(errs, fmt.Errorf("--config %s: %s: %w", f.config, fl.Name, err))
			}
		}
	})
	for name := range fileValues {
		if fs.Lookup(name) == nil {
			errs = append(errs, fmt.Errorf("--config %s: unknown setting %q", f.config, name))
		}
	}
	if f.repo == "" {
		errs = append(errs, errors.New("--repo (or CERTOPS_REPO) is required"))
	}
	if f.commitBatch < 1 {
		errs = append(errs, fmt.Errorf("--commit-batch: want at least 1, got %d", f.commitBatch))
	}
	return errors.Join(errs...)
}

func (f *daemonFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f.logFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: expected text or json, got %q", f.logFormat)
}

// codec builds the SOPS codec from the identities and the pinned set.
func (f *daemonFlags) codec(log *slog.Logger) (*sops.Codec, error) {
	ids, err := f.identities()
	if err != nil {
		return nil, err
	}
	trusted := f.trustedRecipients
	if len(trusted) == 0 {
		trusted = ownRecipients(ids)
	}
	trust, err := sops.NewTrust(trusted, nil)
	if err != nil {
		return nil, fmt.Errorf("trusted recipients: %w", err)
	}
	return sops.New(sops.Options{Trust: trust, Identities: ids, Logger: log})
}

// gitOptions are the repository options from the flags (signing and
// verification keys are added by build).
func (f *daemonFlags) gitOptions(log *slog.Logger) gitsource.Options {
	return gitsource.Options{URL: f.repo, Branch: f.branch, PushBranch: f.pushBranch, AuthDir: f.authDir,
		CacheDir: filepath.Join(f.stateDir, "git"), Logger: log, Observe: observeGit,
		Author: gitsource.Identity{Name: "certops", Email: "certops@localhost"}}
}

// build opens the repository, the codec and the reconciler.
func (f *daemonFlags) build(ctx context.Context, log *slog.Logger) (*reconciler.Reconciler, *gitsource.Repo, error) {
	codec, err := f.codec(log)
	if err != nil {
		return nil, nil, err
	}
	policy, err := f.policy()
	if err != nil {
		return nil, nil, err
	}
	gopts := f.gitOptions(log)
	if f.signingKey != "" {
		if gopts.Signer, err = loadSigner(f.signingKey, f.signingPassphrase); err != nil {
			return nil, nil, err
		}
	}
	if f.verifyKeys != "" || f.allowedSigners != "" {
		var pgp [][]byte
		var signers []byte
		if f.verifyKeys != "" {
			b, err := os.ReadFile(f.verifyKeys)
			if err != nil {
				return nil, nil, fmt.Errorf("--verify-openpgp-keys: %w", err)
			}
			pgp = append(pgp, b)
		}
		if f.allowedSigners != "" {
			if signers, err = os.ReadFile(f.allowedSigners); err != nil {
				return nil, nil, fmt.Errorf("--allowed-signers: %w", err)
			}
		}
		if gopts.Verifier, err = gitsource.NewVerifier(pgp, signers); err != nil {
			return nil, nil, err
		}
	}
	repo, err := gitsource.Open(ctx, gopts)
	if err != nil {
		return nil, nil, err
	}
	acme.SetLibraryLogger(log)
	var applier reconciler.Applier
	if f.apply {
		applier = newApplier(log)
	}
	// The order journal is sealed to the daemon's own age recipients.
	var journal reconciler.Sealer
	if ids, err := f.identities(); err == nil {
		if s, err := reconciler.NewAgeSealer(ids); err == nil {
			journal = s
		} else {
			log.Warn("no order journal: a crash after an ACME order is placed orders again", "reason", err.Error())
		}
	}
	notifiers, err := f.notifiers(log, applier)
	if err != nil {
		repo.Close()
		return nil, nil, err
	}
	rec, err := reconciler.New(reconciler.Options{
		Source: repo, Crypter: codec, Issuers: issuerFactories(f.allowExec), Applier: applier,
		StateDir: f.stateDir, Policy: policy, Workers: f.workers, CommitBatch: f.commitBatch, HostConfig: "allow-exec=" + strings.Join(f.allowExec, "\x00"),
		BackoffMin: f.backoffMin, BackoffMax: f.backoffMax, Logger: log, Journal: journal,
		Notify: notifiers, OnNotified: countNotification,
	})
	if err != nil {
		return nil, nil, err
	}
	return rec, repo, nil
}

// policy reads --policy (nil when unset).
func (f *daemonFlags) policy() (*spec.Policy, error) {
	if f.policyFile == "" {
		return nil, nil
	}
	data, err := os.ReadFile(f.policyFile)
	if err != nil {
		return nil, fmt.Errorf("reading --policy: %w", err)
	}
	p, problems := spec.LoadPolicy(f.policyFile, data)
	if len(problems) > 0 {
		return nil, fmt.Errorf("--policy: %w", problems[0])
	}
	return p, nil
}

func (f *daemonFlags) identities() (sops.Identities, error) {
	if f.ageIdentity != "" {
		return sops.ReadIdentityFile(f.ageIdentity)
	}
	ids, err := sops.IdentitiesFromEnv(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("no age identity: pass --age-identity or set SOPS_AGE_KEY_FILE: %w", err)
	}
	return ids, nil
}

func loadSigner(file, passFile string) (gitsource.Signer, error) {
	key, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--signing-key: %w", err)
	}
	var pass string
	if passFile != "" {
		b, err := os.ReadFile(passFile)
		if err != nil {
			return nil, fmt.Errorf("--signing-passphrase-file: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	if strings.Contains(string(key), "BEGIN PGP PRIVATE KEY BLOCK") {
		return gitsource.NewOpenPGPSigner(key, pass)
	}
	return gitsource.NewSSHSigner(key, pass)
}

func newReconcileCommand() *cobra.Command {
	var f daemonFlags
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Run one pass: issue what is due, commit, push, apply; then exit",
		Long: `Reconcile runs one pass of the daemon and exits: it fetches the repository,
validates the specs, issues or renews every certificate that is due, encrypts
the keypairs with SOPS, writes one commit with a trailer block per certificate,
pushes it, and applies the Secrets to the target clusters.

It exits 0 when every certificate is fine and 1 with a summary when any
certificate (or the pass itself) failed. Invalid specs are reported and
skipped; nothing that exists is deleted because of them.`,
		Example: `  SOPS_AGE_KEY_FILE=~/.config/certops/age.key \
    certops reconcile --repo https://git.example.com/platform/certs.git --auth-dir /etc/certops/git`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.resolve(cmd.Flags(), os.Getenv); err != nil {
				return err
			}
			log, err := f.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			setMemoryLimit(log, os.DirFS("/"), os.Getenv)
			gctune.Apply(os.Getenv)
			rec, repo, err := f.build(cmd.Context(), log)
			if err != nil {
				return err
			}
			defer repo.Close()
			rep := rec.Pass(cmd.Context(), true)
			closeNotifiers(cmd.Context(), log, rec)
			printSummary(cmd.OutOrStdout(), cmd.ErrOrStderr(), rep)
			if rep.Failed() > 0 || len(rep.Problems) > 0 || (rep.Apply != nil && len(rep.Apply.Errors) > 0) {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// printSummary writes the pass's table to stdout and glyph lines to stderr.
func printSummary(stdout, stderr io.Writer, rep *reconciler.Report) {
	for _, p := range rep.Problems {
		fmt.Fprintln(stderr, "! skipped: "+p.Error())
	}
	issued, failed := 0, 0
	for _, c := range rep.Results {
		switch {
		case c.Error != "" && c.Waiting:
			fmt.Fprintf(stderr, "… %s waits until %s: %s\n", c.Name, c.RetryAt.UTC().Format(time.RFC3339), c.Error)
		case c.Error != "":
			failed++
			fmt.Fprintf(stderr, "✗ %s: %s (retry at %s)\n", c.Name, c.Error, c.RetryAt.UTC().Format(time.RFC3339))
		case c.Action != spec.ActionNone:
			issued++
			fmt.Fprintf(stderr, "✔ %s %s (%s) serial %s, not after %s\n", c.Action, c.Name, c.Reason, c.Serial, c.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	if rep.Pushed != "" {
		fmt.Fprintf(stderr, "✔ pushed %s\n", short(rep.Pushed))
	}
	if rep.Apply != nil {
		fmt.Fprintf(stderr, "✔ applied %d Secret(s), %d unchanged, %d skipped, %d error(s)\n", rep.Apply.Applied, rep.Apply.Unchanged, rep.Apply.Skipped, len(rep.Apply.Errors))
		for _, err := range rep.Apply.Errors {
			fmt.Fprintln(stderr, "✗ "+err.Error())
		}
	}
	if rep.Error != "" {
		fmt.Fprintln(stderr, "✗ "+rep.Error)
	}
	fmt.Fprintf(stdout, "commit=%s pushed=%s issued=%d failed=%d problems=%d\n", short(rep.Commit), short(rep.Pushed), issued, failed, len(rep.Problems))
}

func short(h string) string {
	if len(h) > 7 {
		return h[:7]
	}
	return h
}

// ownRecipients are the recipients of the given identities.
func ownRecipients(ids sops.Identities) []string {
	var out []string
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			out = append(out, x.Recipient().String())
		}
	}
	return out
}

// decrypter is a codec for reading only: it trusts just the identities'
// own recipients, and never encrypts.
func decrypter(ids sops.Identities) (*sops.Codec, error) {
	trust, err := sops.NewTrust(ownRecipients(ids), nil)
	if err != nil {
		return nil, fmt.Errorf("age identity: %w", err)
	}
	return sops.New(sops.Options{Trust: trust, Identities: ids})
}
