package sops_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"certops.dev/certops/sops"
)

func TestRuleFor(t *testing.T) {
	a, b, c, stranger := newAgeKey(t), newAgeKey(t), newAgeKey(t), newAgeKey(t)
	codec := newCodec(t, []ageKey{a, b, c})
	age := func(k ageKey) sops.Recipient { return sops.Recipient{Kind: sops.KindAge, ID: k.recipient} }

	tests := []struct {
		name      string
		files     map[string]string
		file      string
		want      sops.Rule
		wantErr   error
		errSubstr string
	}{
		{
			name:  "first matching path_regex wins",
			files: map[string]string{".sops.yaml": fmt.Sprintf("creation_rules:\n  - path_regex: ^secrets/prod/\n    age: %s\n  - path_regex: ^secrets/\n    age: %s\n", a.recipient, b.recipient)},
			file:  "secrets/prod/web.yaml",
			want:  sops.Rule{Config: ".sops.yaml", Index: 0, Groups: [][]sops.Recipient{{age(a)}}},
		},
		{
			name:  "later rule when the first does not match",
			files: map[string]string{".sops.yaml": fmt.Sprintf("creation_rules:\n  - path_regex: ^secrets/prod/\n    age: %s\n  - path_regex: ^secrets/\n    age: [%s, %s]\n", a.recipient, b.recipient, c.recipient)},
			file:  "secrets/dev/web.yaml",
			want:  sops.Rule{Config: ".sops.yaml", Index: 1, Groups: [][]sops.Recipient{{age(b), age(c)}}},
		},
		{
			name:  "rule without path_regex matches everything",
			files: map[string]string{".sops.yaml": fmt.Sprintf("creation_rules:\n  - age: %s\n", a.recipient)},
			file:  "secrets/dev/web.yaml",
			want:  sops.Rule{Config: ".sops.yaml", Groups: [][]sops.Recipient{{age(a)}}},
		},
		{
			name: "nearest .sops.yaml first, path relative to it",
			files: map[string]string{
				".sops.yaml":         fmt.Sprintf("creation_rules:\n  - age: %s\n", a.recipient),
				"secrets/.sops.yaml": fmt.Sprintf("creation_rules:\n  - path_regex: ^secrets/\n    age: %s\n  - path_regex: ^prod/web\\.yaml$\n    age: %s\n", a.recipient, b.recipient),
			},
			file: "secrets/prod/web.yaml",
			want: sops.Rule{Config: "secrets/.sops.yaml", Index: 1, Groups: [][]sops.Recipient{{age(b)}}},
		},
		{
			name: "no fallback to a parent .sops.yaml",
			files: map[string]string{
				".sops.yaml":         fmt.Sprintf("creation_rules:\n  - age: %s\n", a.recipient),
				"secrets/.sops.yaml": fmt.Sprintf("creation_rules:\n  - path_regex: ^nothing$\n    age: %s\n", a.recipient),
			},
			file:    "secrets/prod/web.yaml",
			wantErr: sops.ErrNoRule, errSubstr: "secrets/.sops.yaml",
		},
		{
			name: "key groups with shamir threshold",
			files: map[string]string{".sops.yaml": fmt.Sprintf(
				"creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [%s]\n      - age: [%s]\n        merge:\n          - age: [%s]\n", a.recipient, b.recipient, c.recipient)},
			file: "secrets/x.yaml",
			want: sops.Rule{Config: ".sops.yaml", ShamirThreshold: 2, Groups: [][]sops.Recipient{{age(a)}, {age(c), age(b)}}},
		},
		{
			name: "shamir threshold 1 cannot split",
			files: map[string]string{".sops.yaml": fmt.Sprintf(
				"creation_rules:\n  - shamir_threshold: 1\n    key_groups:\n      - age: [%s]\n      - age: [%s]\n", a.recipient, b.recipient)},
			file:    "secrets/x.yaml",
			wantErr: sops.ErrConfig, errSubstr: "shamir_threshold 1",
		},
		{
			name:  "removing recipients is allowed",
			files: map[string]string{".sops.yaml": fmt.Sprintf("creation_rules:\n  - age: %s\n", c.recipient)},
			file:  "secrets/x.yaml",
			want:  sops.Rule{Config: ".sops.yaml", Groups: [][]sops.Recipient{{age(c)}}},
		},
		{
			name:    "widened recipient set is refused",
			files:   map[string]string{".sops.yaml": fmt.Sprintf("creation_rules:\n  - age: %s,%s\n", a.recipient, stranger.recipient)},
			file:    "secrets/x.yaml",
			wantErr: sops.ErrUntrustedRecipient, errSubstr: stranger.recipient,
		},
		{
			name:    "untrusted pgp fingerprint is refused",
			files:   map[string]string{".sops.yaml": fmt.Sprintf("creation_rules:\n  - age: %s\n    pgp: 85D77543B3D624B63CEA9E6DBC17301B491B3F21\n", a.recipient)},
			file:    "secrets/x.yaml",
			wantErr: sops.ErrUntrustedRecipient, errSubstr: "pgp:85D77543B3D624B63CEA9E6DBC17301B491B3F21",
		},
		{
			name:    "no .sops.yaml",
			files:   map[string]string{"README.md": "hi"},
			file:    "secrets/x.yaml",
			wantErr: sops.ErrNoRule,
		},
		{
			name:    ".sops.yaml that does not parse",
			files:   map[string]string{".sops.yaml": "creation_rules:\n  - age: [unclosed\n"},
			file:    "secrets/x.yaml",
			wantErr: sops.ErrConfig, errSubstr: ".sops.yaml",
		},
		{
			name:    "path_regex that does not compile",
			files:   map[string]string{".sops.yaml": "creation_rules:\n  - path_regex: '(['\n    age: " + a.recipient + "\n"},
			file:    "secrets/x.yaml",
			wantErr: sops.ErrConfig, errSubstr: "creation_rules[0].path_regex",
		},
		{
			name:    "rule with no recipients",
			files:   map[string]string{".sops.yaml": "creation_rules:\n  - path_regex: ^secrets/\n    encrypted_regex: ^(data|stringData)$\n"},
			file:    "secrets/x.yaml",
			wantErr: sops.ErrNoRecipients, errSubstr: "creation_rules[0]",
		},
		{
			name:    "empty key group",
			files:   map[string]string{".sops.yaml": "creation_rules:\n  - key_groups:\n      - age: []\n"},
			file:    "secrets/x.yaml",
			wantErr: sops.ErrNoRecipients,
		},
		{
			name:    "cloud KMS cannot be pinned",
			files:   map[string]string{".sops.yaml": "creation_rules:\n  - kms: arn:aws:kms:us-east-1:1:key/x\n    age: " + a.recipient + "\n"},
			file:    "secrets/x.yaml",
			wantErr: sops.ErrUnsupportedRecipient,
		},
		{
			name:    "malformed age recipient",
			files:   map[string]string{".sops.yaml": "creation_rules:\n  - age: age1notakey\n"},
			file:    "secrets/x.yaml",
			wantErr: sops.ErrConfig,
		},
		{
			name:    "conflicting encrypted_regex",
			files:   map[string]string{".sops.yaml": "creation_rules:\n  - encrypted_regex: ^data$\n    age: " + a.recipient + "\n"},
			file:    "secrets/x.yaml",
			wantErr: sops.ErrConfig, errSubstr: "encrypted_regex",
		},
		{
			name:    "unencrypted_suffix would change the layout",
			files:   map[string]string{".sops.yaml": "creation_rules:\n  - unencrypted_suffix: _clear\n    age: " + a.recipient + "\n"},
			file:    "secrets/x.yaml",
			wantErr: sops.ErrConfig,
		},
		{
			name:    "mac_only_encrypted would leave metadata unauthenticated",
			files:   map[string]string{".sops.yaml": "creation_rules:\n  - mac_only_encrypted: true\n    age: " + a.recipient + "\n"},
			file:    "secrets/x.yaml",
			wantErr: sops.ErrConfig,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := codec.RuleFor(repoWith(tt.files), tt.file)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errSubstr) || !strings.Contains(err.Error(), tt.file) {
					t.Errorf("error %q does not name %q and the file", err, tt.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("rule (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWidenedRecipientsChangeNothing(t *testing.T) {
	a, stranger := newAgeKey(t), newAgeKey(t)
	c := newCodec(t, []ageKey{a}, a)
	good := repoWith(map[string]string{".sops.yaml": ageRules(a)})
	bad := repoWith(map[string]string{".sops.yaml": ageRules(a, stranger)})
	plain := tlsSecret(t, "web")
	old, err := c.Encrypt(good, "secrets/web.yaml", plain)
	if err != nil {
		t.Fatal(err)
	}

	_, err = c.Encrypt(bad, "secrets/web.yaml", plain)
	var ue *sops.UntrustedRecipientError
	if !errors.As(err, &ue) {
		t.Fatalf("encrypt: got %v, want *UntrustedRecipientError", err)
	}
	want := []sops.Recipient{{Kind: sops.KindAge, ID: stranger.recipient}}
	if diff := cmp.Diff(want, ue.Recipients); diff != "" || ue.Config != ".sops.yaml" {
		t.Errorf("untrusted (-want +got):\n%s (config %q)", diff, ue.Config)
	}
	if out, changed, err := c.Update(bad, "secrets/web.yaml", old, plain); !errors.Is(err, sops.ErrUntrustedRecipient) || out != nil || changed {
		t.Errorf("update: got %d bytes, changed=%v, %v; want nothing and ErrUntrustedRecipient", len(out), changed, err)
	}
	if out, err := c.Rekey(t.Context(), bad, map[string][]byte{"secrets/web.yaml": old}); !errors.Is(err, sops.ErrUntrustedRecipient) || out != nil {
		t.Errorf("rekey: got %v, %v; want nothing and ErrUntrustedRecipient", out, err)
	}
}

func TestTrust(t *testing.T) {
	a := newAgeKey(t)
	if _, err := sops.NewTrust(nil, nil); err == nil {
		t.Error("empty trust set: got nil error")
	}
	if _, err := sops.NewTrust([]string{"age1plugin1xyz"}, nil); !errors.Is(err, sops.ErrUnsupportedRecipient) {
		t.Errorf("plugin recipient: got %v, want ErrUnsupportedRecipient", err)
	}
	if _, err := sops.NewTrust([]string{a.id.String()}, nil); err == nil || strings.Contains(err.Error(), "AGE-SECRET-KEY") {
		t.Errorf("identity given as recipient: got %v, want an error that does not quote it", err)
	}
	tr, err := sops.NewTrust([]string{strings.ToUpper(a.recipient)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Has(sops.Recipient{Kind: sops.KindAge, ID: a.recipient}) {
		t.Error("upper-case spelling of a recipient is not the same recipient")
	}
}

// A Codec is shared by the reconciler's workers.
func TestConcurrentUse(t *testing.T) {
	a := newAgeKey(t)
	c := newCodec(t, []ageKey{a}, a)
	repo := repoWith(map[string]string{".sops.yaml": ageRules(a)})
	plain := tlsSecret(t, "web")
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			file := fmt.Sprintf("secrets/prod/web%d.yaml", i)
			enc, err := c.Encrypt(repo, file, plain)
			if err == nil {
				_, err = c.Decrypt(file, enc)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
