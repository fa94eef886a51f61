package sops

import (
	"strconv"
	"strings"
	"time"

	gosops "github.com/getsops/sops/v3"
)

// emitFast writes one document as emitPlain's yaml.v3 encoder would, for
// the layout certops' Secrets and their sops metadata have: block mappings
// and sequences of scalars or mappings, string keys, and values that are
// strings yaml.v3 writes plain, double-quoted without escapes, or as a
// literal block, or ints and bools. ok is false for anything else (several
// documents, an empty mapping or sequence, a sequence in a sequence, a
// string it cannot place with certainty), and then yaml.v3 writes it: it
// is the authority, this only skips its cost. yaml.v3's emitter keeps every
// event of a document in a slice it never shrinks, and a Secret and its
// metadata were a fifth of all the bytes allocated issuing thousands of
// certificates.
//
// A wrong rendering cannot pass for a right one unnoticed: the tests
// compare this with the store's output on generated trees and under
// fuzzing, like loadFast.
func emitFast(branches gosops.TreeBranches) ([]byte, bool) {
	if len(branches) != 1 || len(branches[0]) == 0 {
		return nil, false
	}
	e := fastEmitter{buf: make([]byte, 0, 4096)}
	if !e.mapping(branches[0], 0, false) {
		return nil, false
	}
	return e.buf, true
}

type fastEmitter struct {
	buf []byte
}

func (e *fastEmitter) indent(n int) {
	for range n {
		e.buf = append(e.buf, ' ')
	}
}

// mapping writes the pairs of b with keys at indent; with inline, the
// first key follows a sequence's dash already written.
func (e *fastEmitter) mapping(b gosops.TreeBranch, indent int, inline bool) bool {
	for i, it := range b {
		key, ok := it.Key.(string)
		// yaml.v3 writes a key over 128 bytes as a complex key (? key).
		if !ok || len(key) > 128 || !plainScalar(key) {
			return false
		}
		if i > 0 || !inline {
			e.indent(indent)
		}
		e.buf = append(e.buf, key...)
		e.buf = append(e.buf, ':')
		switch v := it.Value.(type) {
		case gosops.TreeBranch:
			if len(v) == 0 {
				return false
			}
			e.buf = append(e.buf, '\n')
			if !e.mapping(v, indent+yamlIndent, false) {
				return false
			}
		case []any:
			if len(v) == 0 {
				return false
			}
			e.buf = append(e.buf, '\n')
			if !e.sequence(v, indent+yamlIndent) {
				return false
			}
		default:
			e.buf = append(e.buf, ' ')
			if !e.scalar(v, indent+yamlIndent, true) {
				return false
			}
		}
	}
	return true
}

// sequence writes the items of s with their dashes at indent.
func (e *fastEmitter) sequence(s []any, indent int) bool {
	for _, x := range s {
		e.indent(indent)
		e.buf = append(e.buf, '-', ' ')
		switch v := x.(type) {
		case gosops.TreeBranch:
			if len(v) == 0 || !e.mapping(v, indent+yamlIndent, true) {
				return false
			}
		case []any:
			return false
		default:
			if !e.scalar(v, 0, false) {
				return false
			}
		}
	}
	return true
}

// scalar writes v and its line break; a literal block (only as a mapping
// value, with block) has its lines at indent.
func (e *fastEmitter) scalar(v any, indent int, block bool) bool {
	switch v := v.(type) {
	case string:
		switch {
		case strings.Contains(v, "\n"):
			if !block || !literalBlock(v) {
				return false
			}
			e.buf = append(e.buf, '|')
			if !strings.HasSuffix(v, "\n") {
				e.buf = append(e.buf, '-')
			}
			e.buf = append(e.buf, '\n')
			for line := range strings.SplitSeq(strings.TrimSuffix(v, "\n"), "\n") {
				e.indent(indent)
				e.buf = append(e.buf, line...)
				e.buf = append(e.buf, '\n')
			}
			return true
		case plainScalar(v):
			e.buf = append(e.buf, v...)
		case quotedScalar(v):
			e.buf = append(e.buf, '"')
			e.buf = append(e.buf, v...)
			e.buf = append(e.buf, '"')
		case wildcard(v):
			e.buf = append(e.buf, '\'')
			e.buf = append(e.buf, v...)
			e.buf = append(e.buf, '\'')
		default:
			return false
		}
	case int:
		e.buf = strconv.AppendInt(e.buf, int64(v), 10)
	case bool:
		e.buf = strconv.AppendBool(e.buf, v)
	default:
		return false
	}
	e.buf = append(e.buf, '\n')
	return true
}

// plainScalar reports whether yaml.v3 writes the string s plain in a block
// context: it reads back as a string (plainString, which also refuses the
// document markers --- and ...), it is printable ASCII on one line without
// leading or trailing space, and it holds neither ": " nor " #" nor ends
// with a colon, which would make it a key or a comment.
func plainScalar(s string) bool {
	return plainString(s) && printableASCII(s) && !strings.Contains(s, "\n") && s[0] != ' ' && s[len(s)-1] != ' ' &&
		s[len(s)-1] != ':' && !strings.Contains(s, ": ") && !strings.Contains(s, " #")
}

// quotedScalar reports whether yaml.v3 writes the string s double-quoted
// with no escapes: because it would otherwise read as another type, and
// it is one of the shapes known to: empty, a decimal number within
// float64's range, an RFC 3339 time in UTC as certops and sops write them,
// or a boolean or null of YAML 1.1 or 1.2 (emitPlain quotes the YAML 1.1
// ones itself).
func quotedScalar(s string) bool {
	if isOldBool(s) {
		return true
	}
	switch s {
	case "true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL", "~":
		return true
	}
	if s == "" {
		return true // null otherwise
	}
	digits := true
	for i := 0; i < len(s); i++ {
		digits = digits && s[i] >= '0' && s[i] <= '9'
	}
	if digits {
		// A number past float64's range reads as a string, written plain.
		_, err := strconv.ParseFloat(s, 64)
		return err == nil
	}
	return utcTime(s)
}

// wildcard reports whether s is a wildcard DNS name, or a list of names
// the first of them a wildcard (*.example.com,example.com), which yaml.v3
// writes single-quoted: a leading * would read as an alias.
func wildcard(s string) bool {
	if len(s) < 2 || s[0] != '*' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && !strings.ContainsRune(".,-_", rune(c)) {
			return false
		}
	}
	return true
}

// utcTime matches 2006-01-02T15:04:05Z with a valid date and time, which
// yaml.v3 reads as a timestamp.
func utcTime(s string) bool {
	const layout = "dddd-dd-ddTdd:dd:ddZ"
	if len(s) != len(layout) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if layout[i] == 'd' {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		} else if s[i] != layout[i] {
			return false
		}
	}
	// yaml.v3's layout: an impossible date (2026-13-45) is a string.
	_, err := time.Parse("2006-1-2T15:4:5.999999999Z07:00", s)
	return err == nil
}

// literalBlock reports whether yaml.v3 writes the multi-line string s as
// the literal block emitFast does: printable ASCII lines, none empty, the
// first not starting with a space, none ending with one, and at most one
// final line break (| keeps it, |- has none).
func literalBlock(s string) bool {
	body := strings.TrimSuffix(s, "\n")
	if body == "" || body[0] == ' ' || strings.HasSuffix(body, "\n") {
		return false
	}
	prev := byte('\n')
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\n':
			if prev == '\n' || prev == ' ' {
				return false
			}
		case c < 0x20 || c > 0x7e:
			return false
		}
		prev = c
	}
	return prev != ' '
}
