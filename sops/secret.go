package sops

import (
	"fmt"
	"io/fs"
	"maps"
	"slices"

	gosops "github.com/getsops/sops/v3"
)

// Secret is a v1 Secret manifest as certops writes it to Git: metadata in
// clear text, the payload in stringData. UpdateSecret encrypts it without
// rendering YAML and parsing it back.
type Secret struct {
	Name, Namespace     string
	Labels, Annotations map[string]string
	Type                string
	StringData          map[string]string
}

// branch is the document s is, with every mapping's keys sorted, as
// certops has always written it; empty maps are left out.
func (s *Secret) branch() gosops.TreeBranch {
	var meta gosops.TreeBranch
	meta = appendMap(meta, "annotations", s.Annotations)
	meta = appendMap(meta, "labels", s.Labels)
	meta = append(meta, gosops.TreeItem{Key: "name", Value: s.Name}, gosops.TreeItem{Key: "namespace", Value: s.Namespace})
	doc := gosops.TreeBranch{
		{Key: "apiVersion", Value: "v1"},
		{Key: "kind", Value: "Secret"},
		{Key: "metadata", Value: meta},
	}
	doc = appendMap(doc, "stringData", s.StringData)
	return append(doc, gosops.TreeItem{Key: "type", Value: s.Type})
}

func appendMap(b gosops.TreeBranch, key string, m map[string]string) gosops.TreeBranch {
	if len(m) == 0 {
		return b
	}
	items := make(gosops.TreeBranch, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		items = append(items, gosops.TreeItem{Key: k, Value: m[k]})
	}
	return append(b, gosops.TreeItem{Key: key, Value: items})
}

// Manifest is s as YAML, in the form Decrypt returns. It holds the private
// key: it only ever goes to an encrypter.
func (s *Secret) Manifest() ([]byte, error) {
	return emitPlain(gosops.TreeBranches{s.branch()})
}

// UpdateSecret is Update of s's manifest, without the YAML in between.
func (c *Codec) UpdateSecret(repo fs.FS, file string, old []byte, s *Secret) (out []byte, changed bool, err error) {
	branches := gosops.TreeBranches{s.branch()}
	if err := checkSecret(branches[0]); err != nil {
		return nil, false, &FileError{Op: "update", Path: file, Err: err}
	}
	return c.update(repo, file, old, branches)
}

// update is Update of the parsed and checked plaintext branches.
func (c *Codec) update(repo fs.FS, file string, old []byte, branches gosops.TreeBranches) ([]byte, bool, error) {
	rule, err := c.ruleFor(repo, file)
	if err != nil {
		return nil, false, &FileError{Op: "update", Path: file, Err: err}
	}
	if old != nil {
		oldPlain, md, err := c.open(old)
		if err != nil {
			return nil, false, &FileError{Op: "update", Path: file, Err: err}
		}
		want, err := emitPlain(branches)
		if err != nil {
			return nil, false, &FileError{Op: "update", Path: file, Err: fmt.Errorf("%w: emit plaintext", ErrMalformed)}
		}
		if string(want) == string(oldPlain) && sameRecipients(metadataGroups(md), md.ShamirThreshold, rule) &&
			md.EncryptedRegex == SecretEncryptedRegex {
			return old, false, nil
		}
	}
	out, err := c.encryptBranches(rule, branches)
	if err != nil {
		return nil, false, &FileError{Op: "update", Path: file, Err: err}
	}
	c.log.Debug("encrypted", "file", file, "config", rule.Config, "recipients", countRecipients(rule.Groups))
	return out, true, nil
}
