package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	yamlv3 "go.yaml.in/yaml/v3"
	"golang.org/x/term"
	"sigs.k8s.io/yaml"

	"certops.dev/certops/sops"
	"certops.dev/certops/spec"
)

func newExportCommand() *cobra.Command {
	var ageIdentity, outDir, format, out, passwordFile string
	var chain bool
	cmd := &cobra.Command{
		Use:   "export NAME [PATH]",
		Short: "Decrypt one certificate from a checkout: the Secret manifest, PEM files or the chain",
		Long: `Export decrypts the Secret of certificate NAME ("namespace/name", or "name" when
it is unique) from the repository checkout at PATH (default: the current
directory) with your age identity (--age-identity, or $SOPS_AGE_KEY_FILE /
$SOPS_AGE_KEY as sops reads them).

By default it writes the decrypted manifest to stdout, byte for byte what
"sops -d" prints. --out-dir writes tls.crt, ca.crt and tls.key (mode 0600)
into a folder only you can read. --chain prints only the certificates.
--format pkcs12 writes a PKCS#12 keystore (Modern2023: AES-256 and
PBKDF2, as openssl 3 and Java 17+ read) to --out FILE (mode 0600); its password
comes from --password-file, or is asked for on the terminal, never from a flag.
A private key is never written to a terminal or to a folder others can read.`,
		Example: `  certops export web/web --out-dir ./web-tls
  certops export web/web --chain | openssl x509 -noout -text
  certops export web/web > web-secret.yaml
  certops export web/web --format pkcs12 --password-file ./p12.pass --out web.p12`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, repo, c, err := certificateArg(args)
			if err != nil {
				return err
			}
			file := c.SecretPath(&repo.Config)
			ct, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(file)))
			if err != nil {
				return fmt.Errorf("%s has not been issued yet: %w", c.Key(), err)
			}
			var ids sops.Identities
			if ageIdentity != "" {
				ids, err = sops.ReadIdentityFile(ageIdentity)
			} else {
				ids, err = sops.IdentitiesFromEnv(os.Getenv)
			}
			if err != nil {
				return fmt.Errorf("no age identity: %w", err)
			}
			codec, err := decrypter(ids)
			if err != nil {
				return err
			}
			plain, err := codec.Decrypt(file, ct)
			if err != nil {
				return err
			}
			data, err := secretStringData(plain)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			stdout := cmd.OutOrStdout()
			switch format {
			case "pem":
			case "chain":
				chain = true
			case "pkcs12":
				return writePKCS12(cmd, out, passwordFile, data)
			default:
				return fmt.Errorf("--format: %q is not pem, pkcs12 or chain", format)
			}
			switch {
			case chain:
				_, err = io.WriteString(stdout, data["tls.crt"])
				return err
			case outDir != "":
				return writePEMFiles(outDir, data)
			default:
				if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					return errors.New("refusing to print a private key to a terminal: redirect stdout, or use --chain or --out-dir")
				}
				out, err := sopsCLIFormat(plain)
				if err != nil {
					return err
				}
				_, err = stdout.Write(out)
				return err
			}
		},
	}
	cmd.Flags().StringVar(&ageIdentity, "age-identity", "", "age identity file (default: $SOPS_AGE_KEY_FILE or $SOPS_AGE_KEY)")
	cmd.Flags().StringVar(&outDir, "out-dir", "", "write tls.crt, ca.crt and tls.key (0600) into this folder (created 0700)")
	cmd.Flags().BoolVar(&chain, "chain", false, "print only the certificate chain (PEM); same as --format chain")
	cmd.Flags().StringVar(&format, "format", "pem", "pem (manifest or --out-dir files), chain, or pkcs12 (needs --out)")
	cmd.Flags().StringVar(&out, "out", "", "with --format pkcs12: the keystore file to write (0600)")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "with --format pkcs12: a file holding the keystore password (default: asked on the terminal)")
	_ = cmd.RegisterFlagCompletionFunc("format", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"pem", "chain", "pkcs12"}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// certificateArg reads "NAME [PATH]": the checkout (default ".") and the
// certificate NAME in it.
func certificateArg(args []string) (string, *spec.Repository, *spec.Certificate, error) {
	dir := "."
	if len(args) == 2 {
		dir = args[1]
	}
	repo := spec.Load(os.DirFS(dir), spec.LoadOptions{})
	c, err := findCertificate(repo, args[0])
	return dir, repo, c, err
}

func findCertificate(repo *spec.Repository, name string) (*spec.Certificate, error) {
	if strings.Contains(name, "/") {
		if c := repo.Certificate(name); c != nil {
			return c, nil
		}
		return nil, fmt.Errorf("certificate %s not found (or its spec is invalid: run certops validate)", name)
	}
	var found []*spec.Certificate
	for _, c := range repo.Certificates {
		if c.Metadata.Name == name {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("certificate %s not found (or its spec is invalid: run certops validate)", name)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%d certificates are named %s: give namespace/name", len(found), name)
}

func secretStringData(plain []byte) (map[string]string, error) {
	var m struct {
		StringData map[string]string `json:"stringData"`
	}
	if err := yaml.Unmarshal(plain, &m); err != nil {
		return nil, err
	}
	if m.StringData["tls.crt"] == "" {
		return nil, errors.New("the Secret holds no tls.crt")
	}
	return m.StringData, nil
}

// writePEMFiles writes the keypair into dir, which must be private.
func writePEMFiles(dir string, data map[string]string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("refusing to write a private key into %s: it is readable by others (mode %v); chmod 700 it", dir, fi.Mode().Perm())
	}
	for name, mode := range map[string]os.FileMode{"tls.crt": 0o644, "ca.crt": 0o644, "tls.key": 0o600} {
		if data[name] == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data[name]), mode); err != nil {
			return err
		}
	}
	return nil
}

// sopsCLIFormat re-indents a decrypted manifest the way `sops -d` prints
// it (the sops YAML store's default indent of 4), so that export's output
// is byte for byte what the sops CLI gives for the same file.
func sopsCLIFormat(plain []byte) ([]byte, error) {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(plain, &doc); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := yamlv3.NewEncoder(&b)
	enc.SetIndent(4)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
