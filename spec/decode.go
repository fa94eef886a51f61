package spec

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	yaml "go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a repository, with where it is.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Field   string `json:"field,omitempty"` // e.g. spec.privateKey.size
	Message string `json:"message"`
}

func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Column > 0 {
			fmt.Fprintf(&b, ":%d", p.Column)
		}
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// maxAliasNodes bounds how many nodes a document may reach through YAML
// aliases, so an alias bomb ("billion laughs") is rejected after a bounded
// amount of work instead of expanding. Real specs use few or no aliases.
const maxAliasNodes = 10_000

// pos is a line and column in a file.
type pos struct{ line, col int }

// decoder turns a yaml.Node tree into Go values strictly: unknown fields,
// duplicate keys and wrong types are problems, all of them collected.
type decoder struct {
	file       string
	problems   []Problem
	positions  map[string]pos // field path → position of its value
	aliasNodes int
	aliasBomb  bool
	// unsupported maps field paths (with indexes removed) that exist in
	// cert-manager but not in certops to a hint.
	unsupported map[string]string
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, positions: map[string]pos{}}
}

func (d *decoder) addf(n *yaml.Node, path, format string, args ...any) {
	p := Problem{File: d.file, Field: path, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	d.problems = append(d.problems, p)
}

// at returns the recorded position of path or of its nearest parent.
func (d *decoder) at(path string) pos {
	for p := path; ; {
		if v, ok := d.positions[p]; ok {
			return v
		}
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			return d.positions[""]
		}
		p = p[:i]
	}
}

// scalarUnmarshaler is implemented by types read from one YAML scalar.
type scalarUnmarshaler interface {
	unmarshalScalar(s string) error
}

var scalarUnmarshalerType = reflect.TypeFor[scalarUnmarshaler]()

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		if d.aliasBomb {
			return nil
		}
		d.aliasNodes += countNodes(n.Alias, maxAliasNodes-d.aliasNodes+1)
		if d.aliasNodes > maxAliasNodes {
			d.aliasBomb = true
			d.addf(n, path, "YAML aliases expand to more than %d nodes; refusing the document", maxAliasNodes)
			return nil
		}
		n = n.Alias
	}
	return n
}

// countNodes counts n's nodes, aliases expanded, stopping at limit.
func countNodes(n *yaml.Node, limit int) int {
	count := 0
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if count >= limit || n == nil {
			return
		}
		count++
		if n.Kind == yaml.AliasNode {
			walk(n.Alias)
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return count
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("string %q", truncate(n.Value, 40))
		case "!!int":
			return "integer " + truncate(n.Value, 40)
		case "!!bool":
			return "boolean " + n.Value
		case "!!float":
			return "number " + truncate(n.Value, 40)
		case "!!null":
			return "null"
		}
		return fmt.Sprintf("%s %q", n.ShortTag(), truncate(n.Value, 40))
	}
	return "an unexpected node"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// decode stores n into v (addressable), reporting problems under path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = d.resolve(n, path)
	if n == nil {
		return
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		d.decode(n.Content[0], v, path)
		return
	}
	d.positions[path] = pos{n.Line, n.Column}
	if isNull(n) {
		return // leave the zero value, as JSON null would
	}
	if v.Kind() == reflect.Pointer {
		elem := reflect.New(v.Type().Elem())
		d.decode(n, elem.Elem(), path)
		v.Set(elem)
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(scalarUnmarshalerType) {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			d.addf(n, path, "expected a string, got %s", describe(n))
			return
		}
		if err := v.Addr().Interface().(scalarUnmarshaler).unmarshalScalar(n.Value); err != nil {
			d.addf(n, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.addf(n, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Interface:
		var out any
		if err := n.Decode(&out); err != nil {
			d.addf(n, path, "%v", err)
			return
		}
		if out != nil {
			v.Set(reflect.ValueOf(out))
		}
	default:
		d.decodeScalar(n, v, path)
	}
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.addf(n, path, "expected %s, got %s", kindName(v.Kind()), describe(n))
		return
	}
	tag := n.ShortTag()
	switch v.Kind() {
	case reflect.String:
		if tag != "!!str" {
			d.addf(n, path, "expected a string, got %s (quote it)", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if tag != "!!bool" || err != nil {
			d.addf(n, path, "expected a boolean, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(n.Value, 0, v.Type().Bits())
		if tag != "!!int" || err != nil {
			d.addf(n, path, "expected an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, v.Type().Bits())
		if (tag != "!!float" && tag != "!!int") || err != nil {
			d.addf(n, path, "expected a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		d.addf(n, path, "cannot decode into %s", v.Type())
	}
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return k.String()
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.addf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := d.resolve(n.Content[i], path), n.Content[i+1]
		if k == nil {
			return
		}
		if k.Kind != yaml.ScalarNode {
			d.addf(k, path, "expected a string key, got %s", describe(k))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.addf(k, join(path, k.Value), "duplicate key %q (first at line %d)", k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		ev := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, ev, join(path, k.Value))
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), ev)
	}
	v.Set(m)
}

type fieldInfo struct {
	index []int
	name  string
}

var fieldCache sync.Map // reflect.Type → map[string]fieldInfo

// fieldsOf maps the JSON names of t's fields (inline structs flattened) to
// their indexes.
func fieldsOf(t reflect.Type) map[string]fieldInfo {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]fieldInfo)
	}
	out := map[string]fieldInfo{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if opts == "inline" || (f.Anonymous && name == "") {
			for k, sub := range fieldsOf(f.Type) {
				out[k] = fieldInfo{index: append([]int{i}, sub.index...), name: k}
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = fieldInfo{index: []int{i}, name: name}
	}
	fieldCache.Store(t, out)
	return out
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.addf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := d.resolve(n.Content[i], path), n.Content[i+1]
		if k == nil {
			return
		}
		if k.Kind == yaml.ScalarNode && k.Value == "<<" {
			d.addf(k, path, "YAML merge keys (<<) are not supported")
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.addf(k, path, "expected a field name, got %s", describe(k))
			continue
		}
		fp := join(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			d.addf(k, fp, "duplicate field (first at line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		fi, ok := fields[k.Value]
		if !ok {
			d.unknownField(k, fp, fields)
			continue
		}
		d.decode(val, v.FieldByIndex(fi.index), fp)
	}
}

func (d *decoder) unknownField(k *yaml.Node, path string, fields map[string]fieldInfo) {
	if hint, ok := d.unsupported[stripIndexes(path)]; ok {
		d.addf(k, path, "cert-manager field not supported by certops: %s", hint)
		return
	}
	for name := range fields {
		if strings.EqualFold(name, k.Value) {
			d.addf(k, path, "unknown field; did you mean %q?", name)
			return
		}
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sortStrings(names)
	d.addf(k, path, "unknown field (expected one of: %s)", strings.Join(names, ", "))
}

func stripIndexes(path string) string {
	var b strings.Builder
	skip := false
	for _, r := range path {
		switch {
		case r == '[':
			skip = true
		case r == ']':
			skip = false
		case !skip:
			b.WriteRune(r)
		}
	}
	return b.String()
}
