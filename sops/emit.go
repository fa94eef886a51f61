package sops

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	gosops "github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/stores"
	"go.yaml.in/yaml/v3"
)

// emitPlain writes branches as the sops YAML store does (EmitPlainFile),
// byte for byte, without its cost: the store turns every key and scalar
// into a yaml.Node with Node.Encode, which renders the value as a YAML
// document and parses it back. That was a fifth of the CPU of issuing
// thousands of certificates. Here a string becomes its node directly, with
// the style Node.Encode would give it; every other scalar still goes
// through Node.Encode. Documents with comments go to the store: certops
// never writes any, and the store's comment placement is not repeated here.
func emitPlain(branches gosops.TreeBranches) ([]byte, error) {
	for _, b := range branches {
		if hasComments(b) {
			return newStore().EmitPlainFile(branches)
		}
	}
	if out, ok := emitFast(branches); ok {
		return out, nil
	}
	var buf bytes.Buffer
	e := yaml.NewEncoder(&buf)
	e.SetIndent(yamlIndent)
	for _, b := range branches {
		doc := yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{branchNode(b)}}
		if err := e.Encode(&doc); err != nil {
			return nil, fmt.Errorf("marshal YAML: %w", err)
		}
	}
	if err := e.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// emitEncrypted is the store's EmitEncryptedFile through emitPlain.
func emitEncrypted(tree gosops.Tree) ([]byte, error) {
	branches, err := stores.SerializeMetadata(tree, stores.MetadataOpts{Flatten: stores.MetadataFlattenNone})
	if err != nil {
		return nil, fmt.Errorf("marshal metadata: %w", err)
	}
	return emitPlain(branches)
}

func hasComments(v any) bool {
	switch v := v.(type) {
	case gosops.Comment:
		return true
	case gosops.TreeBranch:
		for _, it := range v {
			if hasComments(it.Key) || hasComments(it.Value) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if hasComments(x) {
				return true
			}
		}
	}
	return false
}

func branchNode(b gosops.TreeBranch) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Content: make([]*yaml.Node, 0, 2*len(b))}
	for _, it := range b {
		n.Content = append(n.Content, valueNode(it.Key), valueNode(it.Value))
	}
	return n
}

func valueNode(v any) *yaml.Node {
	switch v := v.(type) {
	case gosops.TreeBranch:
		return branchNode(v)
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Content: make([]*yaml.Node, 0, len(v))}
		for _, x := range v {
			n.Content = append(n.Content, valueNode(x))
		}
		return n
	case string:
		// The store writes "<<" as a merge key (!!merge <<); Node.Encode
		// below does the same.
		if utf8.ValidString(v) && v != "<<" {
			return stringNode(v)
		}
	}
	n := &yaml.Node{}
	_ = n.Encode(v) // what the store does; it ignores the error too
	return n
}

// stringNode is the node Node.Encode makes of s, a valid UTF-8 string: tag
// !!str, and double quotes where YAML 1.1 would read a bool or a base-60
// float. The encoder itself quotes what would resolve to another type and
// writes multi-line strings as literal blocks, as it does for Node.Encode's
// node.
func stringNode(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	if !strings.Contains(s, "\n") && (isOldBool(s) || isBase60Float(s)) {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// isOldBool and isBase60Float are the YAML 1.1 forms the yaml package
// quotes when it marshals a string.
func isOldBool(s string) bool {
	switch s {
	case "y", "Y", "yes", "Yes", "YES", "on", "On", "ON",
		"n", "N", "no", "No", "NO", "off", "Off", "OFF":
		return true
	}
	return false
}

var base60float = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`)

func isBase60Float(s string) bool {
	if s == "" {
		return false
	}
	c := s[0]
	if c != '+' && c != '-' && (c < '0' || c > '9') || !strings.Contains(s, ":") {
		return false
	}
	return base60float.MatchString(s)
}
