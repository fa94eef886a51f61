package sops

import (
	"bytes"
	"strconv"
	"strings"

	gosops "github.com/getsops/sops/v3"
)

// loadFast returns the tree branches the sops YAML store's LoadPlainFile
// would, for files laid out as certops writes them (emitPlain): block
// mappings indented by spaces, sequences of mappings, literal block
// scalars (| and |-), and scalars that are strings, plain, single- or
// double-quoted on one line, in printable ASCII. ok is false for anything
// else (comments, flow collections, anchors, tags, a scalar that is not a
// string, duplicate keys, several documents, a value wrapped over lines),
// and then
// the store reads the file: it is the authority, this is only a shortcut
// past the two full yaml.v3 parses it makes of every file. Decrypting the
// 10,000 Secrets of a first apply spent most of its time there.
//
// A wrong tree cannot pass for a right one: every encrypted value is bound
// to its path by its AES-GCM additional data, and the MAC covers every
// value in order, so a misread file fails to decrypt or verify. The tests
// also compare this with the store on generated files and under fuzzing.
func loadFast(in []byte) (gosops.TreeBranches, bool) {
	if len(in) == 0 || in[len(in)-1] != '\n' || !printableASCII(in) ||
		bytes.IndexByte(in, '#') >= 0 || bytes.Contains(in, []byte("\n---")) || bytes.HasPrefix(in, []byte("---")) {
		return nil, false
	}
	p := fastParser{lines: bytes.Split(in[:len(in)-1], []byte("\n"))}
	branch, ok := p.mapping(0)
	if !ok || p.i != len(p.lines) || len(branch) == 0 {
		return nil, false
	}
	return gosops.TreeBranches{branch}, true
}

type fastParser struct {
	lines [][]byte
	i     int
}

// line returns the indentation and content of line i.
func (p *fastParser) line(i int) (int, []byte) {
	l := p.lines[i]
	n := 0
	for n < len(l) && l[n] == ' ' {
		n++
	}
	return n, l[n:]
}

// mapping reads a block mapping whose keys are at indent.
func (p *fastParser) mapping(indent int) (gosops.TreeBranch, bool) {
	var branch gosops.TreeBranch
	for p.i < len(p.lines) {
		ind, content := p.line(p.i)
		if len(content) == 0 {
			return nil, false // blank lines only inside block scalars
		}
		if ind < indent {
			break
		}
		if ind > indent || content[0] == '-' && (len(content) == 1 || content[1] == ' ') {
			return nil, false // sequences are read by nested
		}
		key, rest, ok := splitKey(content)
		if !ok {
			return nil, false
		}
		for _, it := range branch {
			if it.Key == key {
				return nil, false // the store refuses duplicate keys
			}
		}
		p.i++
		var value any
		switch {
		case len(rest) == 0:
			value, ok = p.nested(indent)
		case string(rest) == "|" || string(rest) == "|-":
			value, ok = p.block(indent, string(rest) == "|")
		default:
			value, ok = scalar(rest)
		}
		if !ok {
			return nil, false
		}
		branch = append(branch, gosops.TreeItem{Key: key, Value: value})
	}
	return branch, len(branch) > 0
}

// nested reads the mapping or sequence under a key at indent that has no
// value on its line.
func (p *fastParser) nested(indent int) (any, bool) {
	if p.i >= len(p.lines) {
		return nil, false
	}
	ind, content := p.line(p.i)
	switch {
	case len(content) > 1 && content[0] == '-' && content[1] == ' ' && ind >= indent:
		return p.sequence(ind)
	case ind > indent:
		return p.mapping(ind)
	}
	return nil, false // a null value: left to the store
}

// sequence reads a block sequence of mappings whose dashes are at indent.
func (p *fastParser) sequence(indent int) (any, bool) {
	var items []any
	for p.i < len(p.lines) {
		ind, content := p.line(p.i)
		if ind != indent || len(content) < 2 || content[0] != '-' || content[1] != ' ' {
			break
		}
		// "- key: value" starts a mapping whose keys are at the key's
		// column: the dash is read as indentation, on a copy of the line
		// (lines are the caller's bytes).
		pad := 2
		for pad < len(content) && content[pad] == ' ' {
			pad++
		}
		p.lines[p.i] = append(bytes.Repeat([]byte{' '}, indent+pad), content[pad:]...)
		item, ok := p.mapping(indent + pad)
		if !ok {
			return nil, false
		}
		items = append(items, item)
	}
	return items, len(items) > 0
}

// block reads the lines of a literal block scalar under a key at indent;
// clip keeps one final line break (|), strip none (|-).
func (p *fastParser) block(indent int, clip bool) (any, bool) {
	var lines []string
	blockIndent := -1
	for p.i < len(p.lines) {
		raw := p.lines[p.i]
		if len(raw) == 0 {
			lines = append(lines, "")
			p.i++
			continue
		}
		if len(bytes.TrimLeft(raw, " ")) == 0 {
			return nil, false // spaces-only lines: their indentation matters
		}
		ind, _ := p.line(p.i)
		if blockIndent < 0 {
			if ind <= indent {
				return nil, false
			}
			blockIndent = ind
		}
		if ind < blockIndent {
			break
		}
		lines = append(lines, string(raw[blockIndent:]))
		p.i++
	}
	// Trailing blank lines belong to the next node, and clip or strip
	// drops them from the value either way.
	n := len(lines)
	for n > 0 && lines[n-1] == "" {
		n--
	}
	if n == 0 || n != len(lines) {
		return nil, false
	}
	s := strings.Join(lines, "\n")
	if clip {
		s += "\n"
	}
	return s, true
}

// splitKey splits "key: rest" or "key:" into a plain string key and the
// rest of the line.
func splitKey(content []byte) (string, []byte, bool) {
	i := bytes.IndexByte(content, ':')
	if i <= 0 {
		return "", nil, false
	}
	key := string(content[:i])
	// yaml.v3 refuses implicit keys longer than 1024 characters.
	if len(key) > 1024 || !plainString(key) || key[len(key)-1] == ' ' {
		return "", nil, false
	}
	rest := content[i+1:]
	if len(rest) == 0 {
		return key, nil, true
	}
	if rest[0] != ' ' {
		return "", nil, false
	}
	rest = rest[1:]
	if len(rest) == 0 || rest[0] == ' ' || rest[len(rest)-1] == ' ' {
		return "", nil, false
	}
	return key, rest, true
}

// scalar decodes a string scalar written on one line.
func scalar(s []byte) (any, bool) {
	switch s[0] {
	case '"':
		return doubleQuoted(s)
	case '\'':
		if len(s) < 2 || s[len(s)-1] != '\'' {
			return nil, false
		}
		inner := string(s[1 : len(s)-1])
		if strings.Count(inner, "'") != 2*strings.Count(inner, "''") {
			return nil, false
		}
		return strings.ReplaceAll(inner, "''", "'"), true
	}
	v := string(s)
	if !plainString(v) || strings.Contains(v, ": ") || strings.HasSuffix(v, ":") {
		return nil, false
	}
	return v, true
}

// doubleQuoted decodes a double-quoted scalar with the escapes yaml.v3
// writes for printable text.
func doubleQuoted(s []byte) (any, bool) {
	if len(s) < 2 || s[len(s)-1] != '"' {
		return nil, false
	}
	inner := s[1 : len(s)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		if bytes.IndexByte(inner, '"') >= 0 {
			return nil, false
		}
		return string(inner), true
	}
	var b strings.Builder
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch {
		case c == '"':
			return nil, false
		case c != '\\':
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(inner) {
			return nil, false
		}
		switch inner[i] {
		case '\\', '"':
			b.WriteByte(inner[i])
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		default:
			return nil, false
		}
	}
	return b.String(), true
}

// plainString reports whether yaml.v3 reads the plain scalar s as a
// string, conservatively: anything that starts like a number, a date, a
// boolean or null, or with an indicator, is left to the store, except the
// dotted version numbers sops writes (3.13.3) and the hexadecimal serial
// numbers certops writes (5b0f3c1e2d).
func plainString(s string) bool {
	if s == "" {
		return false
	}
	switch s[0] {
	case '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', '~', '+', '.', '<', '=':
		return false
	}
	if s[0] >= '0' && s[0] <= '9' {
		return dottedVersion(s) || digitsAndLetters(s)
	}
	switch strings.ToLower(s) {
	case "y", "yes", "n", "no", "true", "false", "on", "off", "null":
		return false
	}
	return true
}

// printableASCII reports whether b holds only printable ASCII and line
// feeds: a control character, a byte order mark or any other non-ASCII
// text is left to the store, which knows which of them YAML refuses.
func printableASCII[T string | []byte](b T) bool {
	for i := range len(b) {
		if c := b[i]; (c < 0x20 && c != '\n') || c > 0x7e {
			return false
		}
	}
	return true
}

// digitsAndLetters matches ASCII digits and letters, one of them a letter
// other than e, without a 0x, 0o or 0b prefix: not an integer (base 10 or
// prefixed), not a float (digits with an exponent, or inf and nan, which
// start with a letter) and not a date (which has dashes).
func digitsAndLetters(s string) bool {
	if len(s) > 1 && s[0] == '0' && strings.ContainsRune("xXoObB", rune(s[1])) {
		return false
	}
	letter := false
	for _, c := range []byte(s) {
		switch {
		case c >= '0' && c <= '9':
		case c == 'e' || c == 'E':
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			letter = true
		default:
			return false
		}
	}
	return letter
}

// dottedVersion matches digits and at least two dots (1.2.3), which is
// neither a number nor a date.
func dottedVersion(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 3 {
		return false
	}
	for _, part := range parts {
		if _, err := strconv.ParseUint(part, 10, 64); err != nil || part == "" || part[0] == '+' {
			return false
		}
	}
	return true
}
