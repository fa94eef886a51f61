package sops

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"filippo.io/age"
)

// The environment variables the sops CLI reads age identities from.
const (
	EnvAgeKey     = "SOPS_AGE_KEY"
	EnvAgeKeyFile = "SOPS_AGE_KEY_FILE"
)

// Identities are the age identities a Codec decrypts with. They are private
// keys: never print or log them.
type Identities []age.Identity

// ParseIdentities reads age identities in the age key-file format: one
// "AGE-SECRET-KEY-1..." (or "AGE-SECRET-KEY-PQ-1...") per line, with blank
// lines and "#" comments ignored. source names the input in errors. Errors
// give the line number, never the line.
func ParseIdentities(source string, data []byte) (Identities, error) {
	var ids Identities
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		var id age.Identity
		var err error
		switch {
		case strings.HasPrefix(s, "AGE-SECRET-KEY-PQ-1"):
			id, err = age.ParseHybridIdentity(s)
		case strings.HasPrefix(s, "AGE-SECRET-KEY-1"):
			id, err = age.ParseX25519Identity(s)
		case strings.HasPrefix(s, "AGE-PLUGIN-"):
			err = errors.New("age plugins are not supported")
		default:
			err = errors.New("not an age identity")
		}
		if err != nil {
			// The parser's message may quote the key; keep only the line.
			return nil, fmt.Errorf("sops: %s line %d: invalid age identity", source, line)
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("sops: read %s: %w", source, err)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("sops: %s holds no age identity", source)
	}
	return ids, nil
}

// ReadIdentityFile reads an age key file.
func ReadIdentityFile(path string) (Identities, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sops: read age key file: %w", err)
	}
	return ParseIdentities(path, b)
}

// IdentitiesFromEnv reads age identities the way the sops CLI does, from
// SOPS_AGE_KEY (the identities themselves) and SOPS_AGE_KEY_FILE (a path);
// both are used when both are set. It is the only function of this package
// that reads the environment; pass os.Getenv. It returns an error when
// neither variable is set.
func IdentitiesFromEnv(getenv func(string) string) (Identities, error) {
	var ids Identities
	if v := getenv(EnvAgeKey); v != "" {
		got, err := ParseIdentities(EnvAgeKey, []byte(v))
		if err != nil {
			return nil, err
		}
		ids = append(ids, got...)
	}
	if p := getenv(EnvAgeKeyFile); p != "" {
		got, err := ReadIdentityFile(p)
		if err != nil {
			return nil, err
		}
		ids = append(ids, got...)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("sops: no age identity: set %s or %s", EnvAgeKey, EnvAgeKeyFile)
	}
	return ids, nil
}
