package sops

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// ConfigFileName is the name of the sops configuration file.
const ConfigFileName = ".sops.yaml"

// SecretEncryptedRegex selects what is encrypted in a Secret manifest: the
// payload only, so that apiVersion, kind, metadata and type stay readable
// (what Flux's kustomize-controller and KSOPS expect).
const SecretEncryptedRegex = "^(data|stringData)$"

// Rule is the resolved creation rule for one file: which .sops.yaml and which
// rule in it, and the recipients, in key groups as sops uses them.
type Rule struct {
	Config          string        // repository path of the .sops.yaml
	Index           int           // index in creation_rules
	Groups          [][]Recipient // one group unless the rule uses key_groups
	ShamirThreshold int           // 0: every group is needed
}

// configFile mirrors the parts of the sops CLI's config file that matter
// here. Fields sops knows but certops cannot honour are decoded so that a
// matching rule that uses them is refused rather than silently ignored.
type configFile struct {
	CreationRules []creationRule `yaml:"creation_rules"`
}

type creationRule struct {
	PathRegex               string     `yaml:"path_regex"`
	Age                     stringList `yaml:"age"`
	PGP                     stringList `yaml:"pgp"`
	KMS                     stringList `yaml:"kms"`
	GCPKMS                  stringList `yaml:"gcp_kms"`
	AzureKeyVault           stringList `yaml:"azure_keyvault"`
	VaultURI                stringList `yaml:"hc_vault_transit_uri"`
	HCKms                   []string   `yaml:"hckms"`
	KeyGroups               []keyGroup `yaml:"key_groups"`
	ShamirThreshold         int        `yaml:"shamir_threshold"`
	UnencryptedSuffix       string     `yaml:"unencrypted_suffix"`
	EncryptedSuffix         string     `yaml:"encrypted_suffix"`
	UnencryptedRegex        string     `yaml:"unencrypted_regex"`
	EncryptedRegex          string     `yaml:"encrypted_regex"`
	UnencryptedCommentRegex string     `yaml:"unencrypted_comment_regex"`
	EncryptedCommentRegex   string     `yaml:"encrypted_comment_regex"`
	MACOnlyEncrypted        bool       `yaml:"mac_only_encrypted"`
}

type keyGroup struct {
	Merge   []keyGroup `yaml:"merge"`
	Age     []string   `yaml:"age"`
	PGP     []string   `yaml:"pgp"`
	KMS     []any      `yaml:"kms"`
	GCPKMS  []any      `yaml:"gcp_kms"`
	HCKms   []any      `yaml:"hckms"`
	AzureKV []any      `yaml:"azure_keyvault"`
	Vault   []string   `yaml:"hc_vault"`
}

// stringList accepts what sops accepts: a comma-separated string or a list.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*l = nil
		for _, part := range strings.Split(s, ",") {
			if p := strings.TrimSpace(part); p != "" {
				*l = append(*l, p)
			}
		}
		return nil
	case yaml.SequenceNode:
		var ss []string
		if err := n.Decode(&ss); err != nil {
			return err
		}
		*l = ss
		return nil
	}
	return fmt.Errorf("line %d: want a string or a list of strings", n.Line)
}

// findConfig returns the nearest .sops.yaml at or above file's folder, as
// the sops CLI finds it from the folder it runs in.
func findConfig(repo fs.FS, file string) (string, []byte, error) {
	dir := path.Dir(file)
	for {
		p := path.Join(dir, ConfigFileName)
		b, err := fs.ReadFile(repo, p)
		if err == nil {
			return p, b, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", nil, fmt.Errorf("read %s: %w", p, err)
		}
		if dir == "." || dir == "/" || dir == "" {
			return "", nil, fmt.Errorf("%w: no %s in %s or above", ErrNoRule, ConfigFileName, path.Dir(file))
		}
		dir = path.Dir(dir)
	}
}

// RuleFor resolves the creation rule for file (a slash-separated path in
// repo) and checks every recipient it names against the trusted set. The
// nearest .sops.yaml wins and, in it, the first rule whose path_regex
// matches file's path relative to the .sops.yaml's folder (or the first rule
// without path_regex), exactly as the sops CLI does; there is no fallback to
// a .sops.yaml further up.
func (c *Codec) RuleFor(repo fs.FS, file string) (Rule, error) {
	r, err := c.ruleFor(repo, file)
	if err != nil {
		return Rule{}, &FileError{Op: "recipients", Path: file, Err: err}
	}
	// The codec keeps its own copy: a caller may change this one.
	for i, g := range r.Groups {
		if i == 0 {
			r.Groups = slices.Clone(r.Groups)
		}
		r.Groups[i] = slices.Clone(g)
	}
	return r, nil
}

func (c *Codec) ruleFor(repo fs.FS, file string) (Rule, error) {
	file = path.Clean(strings.TrimPrefix(file, "/"))
	cfgPath, raw, err := findConfig(repo, file)
	if err != nil {
		return Rule{}, err
	}
	cfg := c.configs.get(cfgPath, raw, c.parseConfig)
	if cfg.err != nil {
		return Rule{}, cfg.err
	}
	rel := file
	if d := path.Dir(cfgPath); d != "." {
		rel = strings.TrimPrefix(file, d+"/")
	}
	for _, r := range cfg.rules {
		if r.pathRegex == nil || r.pathRegex.MatchString(rel) {
			return r.rule, r.err
		}
	}
	return Rule{}, fmt.Errorf("%w: %s has no creation rule for %s", ErrNoRule, cfgPath, rel)
}

// parsedConfig is one .sops.yaml, parsed, with each creation rule resolved
// and checked against the trusted set.
type parsedConfig struct {
	rules []resolvedRule
	err   error // the file does not parse, or a path_regex does not compile
}

type resolvedRule struct {
	pathRegex *regexp.Regexp // nil: the rule matches every file
	rule      Rule
	err       error // the rule is refused (untrusted recipient, KMS, ...)
}

func (c *Codec) parseConfig(cfgPath string, raw []byte) *parsedConfig {
	var cfg configFile
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return &parsedConfig{err: fmt.Errorf("%w: %s: %w", ErrConfig, cfgPath, err)}
	}
	out := &parsedConfig{}
	for i, cr := range cfg.CreationRules {
		var r resolvedRule
		if cr.PathRegex != "" {
			re, err := regexp.Compile(cr.PathRegex)
			if err != nil {
				return &parsedConfig{err: fmt.Errorf("%w: %s creation_rules[%d].path_regex: %w", ErrConfig, cfgPath, i, err)}
			}
			r.pathRegex = re
		}
		r.rule, r.err = c.resolveRule(cfgPath, i, cr)
		out.rules = append(out.rules, r)
	}
	return out
}

// configCache holds parsed .sops.yaml files by path and content, so that
// encrypting thousands of files parses each configuration once. A changed
// file has new content and is parsed again; the cache is emptied when it
// holds maxConfigs entries, which a repository reaches only if its
// configuration keeps changing.
type configCache struct {
	mu      sync.Mutex
	entries map[string]*parsedConfig // by path + "\x00" + content
}

const maxConfigs = 256

func (cc *configCache) get(cfgPath string, raw []byte, parse func(string, []byte) *parsedConfig) *parsedConfig {
	key := cfgPath + "\x00" + string(raw)
	cc.mu.Lock()
	p, ok := cc.entries[key]
	cc.mu.Unlock()
	if ok {
		return p
	}
	p = parse(cfgPath, raw)
	cc.mu.Lock()
	if cc.entries == nil || len(cc.entries) >= maxConfigs {
		cc.entries = map[string]*parsedConfig{}
	}
	cc.entries[key] = p
	cc.mu.Unlock()
	return p
}

func (c *Codec) resolveRule(cfgPath string, i int, cr creationRule) (Rule, error) {
	where := fmt.Sprintf("%s creation_rules[%d]", cfgPath, i)
	rule := Rule{Config: cfgPath, Index: i, ShamirThreshold: cr.ShamirThreshold}

	// The Secret layout is fixed: the payload is encrypted, the metadata
	// is not, and the MAC covers both. A rule that asks for anything else
	// would either hide what planning reads or leave the key in clear text.
	switch {
	case cr.UnencryptedSuffix != "", cr.EncryptedSuffix != "", cr.UnencryptedRegex != "",
		cr.UnencryptedCommentRegex != "", cr.EncryptedCommentRegex != "":
		return Rule{}, fmt.Errorf("%w: %s selects encrypted fields differently; certops files need encrypted_regex %q (or none)", ErrConfig, where, SecretEncryptedRegex)
	case cr.EncryptedRegex != "" && cr.EncryptedRegex != SecretEncryptedRegex:
		return Rule{}, fmt.Errorf("%w: %s has encrypted_regex %q; certops files need %q", ErrConfig, where, cr.EncryptedRegex, SecretEncryptedRegex)
	case cr.MACOnlyEncrypted:
		return Rule{}, fmt.Errorf("%w: %s sets mac_only_encrypted; certops needs the MAC over the clear-text metadata too", ErrConfig, where)
	}

	if len(cr.KeyGroups) > 0 {
		if len(cr.Age)+len(cr.PGP)+len(cr.KMS)+len(cr.GCPKMS)+len(cr.AzureKeyVault)+len(cr.VaultURI)+len(cr.HCKms) > 0 {
			// sops ignores the top-level keys when key_groups is set;
			// say so instead of guessing which one the author meant.
			return Rule{}, fmt.Errorf("%w: %s has both key_groups and top-level recipients", ErrConfig, where)
		}
		for gi, g := range cr.KeyGroups {
			rs, err := groupRecipients(g, fmt.Sprintf("%s.key_groups[%d]", where, gi))
			if err != nil {
				return Rule{}, err
			}
			if len(rs) == 0 {
				return Rule{}, fmt.Errorf("%w: %s.key_groups[%d]", ErrNoRecipients, where, gi)
			}
			rule.Groups = append(rule.Groups, rs)
		}
	} else {
		if n := len(cr.KMS) + len(cr.GCPKMS) + len(cr.AzureKeyVault) + len(cr.VaultURI) + len(cr.HCKms); n > 0 {
			return Rule{}, fmt.Errorf("%w: %s names cloud KMS keys, which certops cannot pin", ErrUnsupportedRecipient, where)
		}
		rs, err := groupRecipients(keyGroup{Age: cr.Age, PGP: cr.PGP}, where)
		if err != nil {
			return Rule{}, err
		}
		if len(rs) == 0 {
			return Rule{}, fmt.Errorf("%w: %s", ErrNoRecipients, where)
		}
		rule.Groups = [][]Recipient{rs}
	}
	// Shamir's scheme (sops/v3/shamir) needs a threshold of at least 2;
	// the sops CLI fails the same way at encryption time.
	if rule.ShamirThreshold < 0 || rule.ShamirThreshold > len(rule.Groups) ||
		(len(rule.Groups) > 1 && rule.ShamirThreshold == 1) {
		return Rule{}, fmt.Errorf("%w: %s shamir_threshold %d with %d key groups", ErrConfig, where, rule.ShamirThreshold, len(rule.Groups))
	}

	var untrusted []Recipient
	for _, g := range rule.Groups {
		for _, r := range g {
			if !c.trust.Has(r) {
				untrusted = append(untrusted, r)
			}
		}
	}
	if len(untrusted) > 0 {
		return Rule{}, &UntrustedRecipientError{Config: cfgPath, Rule: i, Recipients: untrusted}
	}
	return rule, nil
}

func groupRecipients(g keyGroup, where string) ([]Recipient, error) {
	if len(g.KMS)+len(g.GCPKMS)+len(g.HCKms)+len(g.AzureKV)+len(g.Vault) > 0 {
		return nil, fmt.Errorf("%w: %s names cloud KMS keys, which certops cannot pin", ErrUnsupportedRecipient, where)
	}
	var out []Recipient
	seen := map[Recipient]bool{}
	add := func(r Recipient) {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	for _, m := range g.Merge {
		rs, err := groupRecipients(m, where+".merge")
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			add(r)
		}
	}
	for _, field := range g.Age {
		// sops splits each entry on commas too.
		for _, s := range strings.Split(field, ",") {
			if strings.TrimSpace(s) == "" {
				continue
			}
			r, err := ParseAgeRecipient(s)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrConfig, where, err)
			}
			add(r)
		}
	}
	for _, s := range g.PGP {
		fp := normalizeFingerprint(s)
		if fp == "" {
			continue
		}
		if _, err := hex.DecodeString(fp); err != nil || len(fp) < 16 {
			return nil, fmt.Errorf("%w: %s: pgp %q is not a hex fingerprint", ErrConfig, where, s)
		}
		add(Recipient{Kind: KindPGP, ID: fp})
	}
	return out, nil
}
