package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"certops.dev/certops/examples"
)

const workflow = `# Checks certificate requests in pull requests: every spec must validate,
# and the plan shows what certops will issue, renew or remove once merged.
name: certops
on:
  pull_request:
  push:
    branches: [main]
jobs:
  validate:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-go@v5
        with:
          go-version: stable
      - run: go install certops.dev/certops/cmd/certops@latest
      - run: certops validate --output github
      - run: certops plan
`

const preCommitHooks = `- id: certops-validate
  name: certops validate
  entry: certops validate
  language: system
  pass_filenames: false
  files: ^(certops\.yaml|issuers/|certificates/)
- id: certops-plan
  name: certops plan
  entry: certops plan
  language: system
  pass_filenames: false
  files: ^(certops\.yaml|issuers/|certificates/|secrets/)
`

var ageRecipientRE = regexp.MustCompile(`age1[a-z0-9]{58}`)

func newInitCommand() *cobra.Command {
	var identity, from string
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Scaffold a certificate repository with a fresh age key",
		Long: `Init writes a certificate repository into DIR (which must be empty or not
exist): certops.yaml, .sops.yaml, a self-signed root, a CA issuer and example
certificates (the quick-start), a GitHub Actions workflow and pre-commit hooks
that run certops validate and certops plan on pull requests.

It generates an age identity and writes it to --identity, outside the
repository, with mode 0600; .sops.yaml names its recipient, so certops (given
that identity) and anyone holding it can decrypt what certops commits. An
existing identity file is reused, never overwritten.`,
		Example: `  certops init ./certs --identity ~/.config/certops/age.key
  cd certs && git init && git add -A && git commit -m "Start certificates as code"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
				return fmt.Errorf("%s is not empty", dir)
			}
			absDir, _ := filepath.Abs(dir)
			absID, _ := filepath.Abs(identity)
			if strings.HasPrefix(absID, absDir+string(filepath.Separator)) {
				return errors.New("--identity must be outside the repository: the key must never be committed")
			}
			recipient, created, err := ensureIdentity(identity)
			if err != nil {
				return err
			}
			src := examples.Quickstart()
			if from != "" {
				src = os.DirFS(from)
			}
			if err := copyFS(src, dir); err != nil {
				return err
			}
			sopsPath := filepath.Join(dir, ".sops.yaml")
			sopsYAML, err := os.ReadFile(sopsPath)
			if err != nil || !ageRecipientRE.Match(sopsYAML) {
				sopsYAML = []byte("creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: " + recipient + "\n")
			}
			sopsYAML = ageRecipientRE.ReplaceAll(sopsYAML, []byte(recipient))
			files := map[string]string{
				".sops.yaml":                     string(sopsYAML),
				".github/workflows/certops.yaml": workflow,
				".pre-commit-hooks.yaml":         preCommitHooks,
			}
			for name, content := range files {
				p := filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					return err
				}
			}
			w := cmd.ErrOrStderr()
			if created {
				fmt.Fprintf(w, "✔ generated age identity %s (mode 0600; keep it out of Git)\n", identity)
			} else {
				fmt.Fprintf(w, "✔ reusing age identity %s\n", identity)
			}
			fmt.Fprintf(w, "✔ scaffolded %s (recipient %s)\n", dir, recipient)
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", recipient)
			return nil
		},
	}
	cmd.Flags().StringVar(&identity, "identity", defaultIdentityPath(), "where the age identity is kept (created with mode 0600 when missing)")
	cmd.Flags().StringVar(&from, "from", "", "scaffold from this folder instead of the built-in quick-start")
	return cmd
}

func defaultIdentityPath() string {
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "certops", "age.key")
	}
	return "certops-age.key"
}

// ensureIdentity reads the age identity at path, or creates one there.
func ensureIdentity(path string) (recipient string, created bool, err error) {
	if data, err := os.ReadFile(path); err == nil {
		ids, err := age.ParseIdentities(strings.NewReader(string(data)))
		if err != nil {
			return "", false, fmt.Errorf("reading identity %s: %w", path, err)
		}
		for _, id := range ids {
			if x, ok := id.(*age.X25519Identity); ok {
				return x.Recipient().String(), false, nil
			}
		}
		return "", false, fmt.Errorf("identity %s holds no X25519 identity", path)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("writing identity: %w", err)
	}
	if _, err := fmt.Fprintf(f, "# public key: %s\n%s\n", id.Recipient(), id); err != nil {
		f.Close()
		return "", false, err
	}
	return id.Recipient().String(), true, f.Close()
}

func copyFS(src fs.FS, dst string) error {
	return fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dst, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := fs.ReadFile(src, p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}
