package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	yamlv3 "go.yaml.in/yaml/v3"

	"certops.dev/certops/spec"
)

func newRenewCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "renew NAME [PATH]",
		Short: "Request a re-issue of a certificate through a reviewable edit of its spec",
		Long: `Renew sets the annotation certops.dev/renew to the current time on certificate
NAME ("namespace/name", or "name" when unique) in the checkout at PATH (default:
the current directory). Commit and push the edit, or open a pull request: the
next pass re-issues the certificate with reason ManuallyTriggered, so even a
forced renewal is reviewed and recorded in Git. Comments and the other
documents of the file are kept.`,
		Example: `  certops renew web/web && git commit -am "Renew web/web after key exposure" && git push`,
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, _, c, err := certificateArg(args)
			if err != nil {
				return err
			}
			path := filepath.Join(dir, filepath.FromSlash(c.Source.File))
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			stamp := time.Now().UTC().Format(time.RFC3339)
			out, err := setRenewAnnotation(data, c, stamp)
			if err != nil {
				return fmt.Errorf("%s: %w", c.Source.File, err)
			}
			if err := os.WriteFile(path, out, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "✔ %s: %s=%s on %s; commit and push it to renew\n", c.Source.File, spec.AnnotationRenew, stamp, c.Key())
			return nil
		},
	}
	return cmd
}

// setRenewAnnotation sets metadata.annotations[certops.dev/renew] on the
// document of data that defines c, keeping the other documents.
func setRenewAnnotation(data []byte, c *spec.Certificate, value string) ([]byte, error) {
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	var docs []*yamlv3.Node
	found := false
	for {
		var doc yamlv3.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if !found && len(doc.Content) == 1 && isCertificateDoc(doc.Content[0], c) {
			meta := mapValue(doc.Content[0], "metadata", yamlv3.MappingNode)
			ann := mapValue(meta, "annotations", yamlv3.MappingNode)
			setScalar(ann, spec.AnnotationRenew, value)
			found = true
		}
		docs = append(docs, &doc)
	}
	if !found {
		return nil, fmt.Errorf("no document defines certificate %s", c.Key())
	}
	var b bytes.Buffer
	enc := yamlv3.NewEncoder(&b)
	enc.SetIndent(2)
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func isCertificateDoc(n *yamlv3.Node, c *spec.Certificate) bool {
	if n.Kind != yamlv3.MappingNode || scalar(n, "kind") != spec.KindCertificate {
		return false
	}
	meta := lookup(n, "metadata")
	if meta == nil || scalar(meta, "name") != c.Metadata.Name {
		return false
	}
	ns := scalar(meta, "namespace")
	return ns == c.Metadata.Namespace
}

func lookup(m *yamlv3.Node, key string) *yamlv3.Node {
	if m == nil || m.Kind != yamlv3.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(m *yamlv3.Node, key string) string {
	if v := lookup(m, key); v != nil && v.Kind == yamlv3.ScalarNode {
		return v.Value
	}
	return ""
}

// mapValue returns m[key], adding an empty node of kind when absent (and
// turning flow style into block style so the edit reads well).
func mapValue(m *yamlv3.Node, key string, kind yamlv3.Kind) *yamlv3.Node {
	if v := lookup(m, key); v != nil && v.Kind == kind {
		v.Style &^= yamlv3.FlowStyle
		return v
	}
	v := &yamlv3.Node{Kind: kind, Tag: "!!map"}
	m.Content = append(m.Content, &yamlv3.Node{Kind: yamlv3.ScalarNode, Tag: "!!str", Value: key}, v)
	m.Style &^= yamlv3.FlowStyle
	return v
}

func setScalar(m *yamlv3.Node, key, value string) {
	if v := lookup(m, key); v != nil {
		v.Kind, v.Tag, v.Value, v.Style = yamlv3.ScalarNode, "!!str", value, yamlv3.DoubleQuotedStyle
		return
	}
	m.Content = append(m.Content, &yamlv3.Node{Kind: yamlv3.ScalarNode, Tag: "!!str", Value: key},
		&yamlv3.Node{Kind: yamlv3.ScalarNode, Tag: "!!str", Value: value, Style: yamlv3.DoubleQuotedStyle})
}
