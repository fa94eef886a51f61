package spec

import (
	"encoding/json"
	"reflect"
	"strings"
)

// Schemas returns a JSON Schema (draft 2020-12) for each kind, generated
// from the Go types, keyed by file name (certificate.json, ...). Editors with
// yaml-language-server complete and check specs with them; `make schema`
// writes them to spec/schema/ and a test fails when those files are stale.
func Schemas() map[string][]byte {
	out := map[string][]byte{}
	for file, k := range map[string]struct {
		t     reflect.Type
		kinds []string
		api   []string
	}{
		"certificate.json": {reflect.TypeFor[Certificate](), []string{KindCertificate}, []string{APIVersion, CertManagerAPIVersion}},
		"issuer.json":      {reflect.TypeFor[Issuer](), []string{KindIssuer, KindClusterIssuer}, []string{APIVersion, CertManagerAPIVersion}},
		"config.json":      {reflect.TypeFor[Config](), []string{KindConfig}, []string{APIVersion}},
		"policy.json": {reflect.TypeFor[struct {
			TypeMeta `json:",inline"`
			Metadata ObjectMeta `json:"metadata,omitempty"`
			Spec     Policy     `json:"spec"`
		}](), []string{KindPolicy}, []string{APIVersion}},
	} {
		s := schemaFor(k.t)
		props := s["properties"].(map[string]any)
		props["apiVersion"] = map[string]any{"enum": k.api}
		props["kind"] = map[string]any{"enum": k.kinds}
		s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
		s["$id"] = "https://certops.dev/schema/v1alpha1/" + file
		s["title"] = "certops " + strings.Join(k.kinds, "/")
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			panic("spec: schema: " + err.Error())
		}
		out[file] = append(b, '\n')
	}
	return out
}

var (
	durationType = reflect.TypeFor[Duration]()
	enums        = map[reflect.Type][]string{
		reflect.TypeFor[KeyAlgorithm]():   {string(RSA), string(ECDSA), string(Ed25519)},
		reflect.TypeFor[KeyEncoding]():    {string(PKCS1), string(PKCS8)},
		reflect.TypeFor[RotationPolicy](): {string(RotationAlways), string(RotationNever)},
	}
)

func schemaFor(t reflect.Type) map[string]any {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		return map[string]any{"type": "string", "pattern": `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`, "description": "a Go duration, e.g. 2160h"}
	}
	if e, ok := enums[t]; ok {
		return map[string]any{"type": "string", "enum": e}
	}
	if t == reflect.TypeFor[KeyUsage]() {
		u := make([]string, len(KeyUsages))
		for i, k := range KeyUsages {
			u[i] = string(k)
		}
		return map[string]any{"type": "string", "enum": u}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaFor(t.Elem())}
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return map[string]any{"type": "object"}
		}
		return map[string]any{"type": "object", "additionalProperties": schemaFor(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		var walk func(t reflect.Type)
		walk = func(t reflect.Type) {
			for i := range t.NumField() {
				f := t.Field(i)
				tag := f.Tag.Get("json")
				if tag == "-" || !f.IsExported() {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if opts == "inline" {
					walk(f.Type)
					continue
				}
				props[name] = schemaFor(f.Type)
				if !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Bool {
					required = append(required, name)
				}
			}
		}
		walk(t)
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			sortStrings(required)
			s["required"] = required
		}
		return s
	}
	return map[string]any{}
}
