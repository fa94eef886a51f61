package main

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"software.sslmate.com/src/go-pkcs12"

	"certops.dev/certops/reconciler/issuer"
)

// writePKCS12 writes the keypair of data as a PKCS#12 keystore to out
// (0600, in a folder others cannot read), with the password from
// passwordFile or the terminal.
func writePKCS12(cmd *cobra.Command, out, passwordFile string, data map[string]string) error {
	if out == "" {
		return errors.New("--format pkcs12 needs --out FILE: a keystore is never written to stdout")
	}
	dir := filepath.Dir(out)
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("refusing to write a private key into %s: it is readable by others (mode %v); chmod 700 it", dir, fi.Mode().Perm())
	}
	password, err := readPassword(cmd, passwordFile)
	if err != nil {
		return err
	}
	p12, err := encodePKCS12(data, password)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(p12); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "✔ wrote %s (PKCS#12, mode 0600)\n", out)
	return nil
}

func readPassword(cmd *cobra.Command, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--password-file: %w", err)
		}
		p := string(bytes.TrimRight(b, "\r\n"))
		if p == "" {
			return "", fmt.Errorf("--password-file %s is empty", file)
		}
		return p, nil
	}
	in, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return "", errors.New("--format pkcs12 needs --password-file when stdin is not a terminal")
	}
	_, _ = fmt.Fprint(cmd.ErrOrStderr(), "Keystore password: ")
	p1, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", err
	}
	_, _ = fmt.Fprint(cmd.ErrOrStderr(), "Again: ")
	p2, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", err
	}
	if len(p1) == 0 || !bytes.Equal(p1, p2) {
		return "", errors.New("the passwords are empty or differ")
	}
	return string(p1), nil
}

// encodePKCS12 bundles tls.key, the leaf and the rest of tls.crt (and
// ca.crt) with the Modern2023 encoder, as reconciler/kube does.
func encodePKCS12(data map[string]string, password string) ([]byte, error) {
	var certs []*x509.Certificate
	for _, name := range []string{"tls.crt", "ca.crt"} {
		parsed, err := parseCerts(data[name])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for _, c := range parsed {
			if !slices.ContainsFunc(certs, c.Equal) {
				certs = append(certs, c)
			}
		}
	}
	if len(certs) == 0 {
		return nil, errors.New("tls.crt holds no certificate")
	}
	key, err := issuer.ParsePrivateKeyPEM([]byte(data["tls.key"])) // its errors never hold key material
	if err != nil {
		return nil, fmt.Errorf("tls.key: %w", err)
	}
	p12, err := pkcs12.Modern2023.Encode(key, certs[0], certs[1:], password)
	if err != nil {
		return nil, fmt.Errorf("encoding PKCS#12: %w", err)
	}
	return p12, nil
}
