package sops

import (
	"bytes"
	cryptoaes "crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"strings"
	"time"

	gosops "github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/keys"
)

// Decrypting the files certops writes, without the general machinery.
//
// A first apply to a rebuilt cluster decrypts every Secret file once. In
// it, sops' metadata decoding (a map, then mapstructure), its value parser
// (a backtracking regular expression, an AES key schedule per value) and
// age's armor and header readers (a 4 KiB buffer each, the header parsed
// twice) were a fifth of certops' CPU and a third of what it allocated.
// Each fast path below takes only input it reads exactly as sops or age
// would, and hands anything else to them; the tests compare both on
// emitted, hand-written and fuzzed files.

// fastMetadata is stores.ExtractMetadata for the metadata certops writes:
// age recipients only, in one key group, an encrypted_regex, lastmodified,
// mac and version. ok is false for anything else (other key types, key
// groups, Shamir, other selectors, a value that is not a string), and
// branches are then left as they were.
func fastMetadata(branches gosops.TreeBranches) (gosops.TreeBranches, gosops.Metadata, bool) {
	if len(branches) != 1 {
		return nil, gosops.Metadata{}, false
	}
	doc := branches[0]
	at := -1
	for i, item := range doc {
		if item.Key == "sops" {
			if at >= 0 {
				return nil, gosops.Metadata{}, false
			}
			at = i
		}
	}
	if at < 0 {
		return nil, gosops.Metadata{}, false
	}
	mdBranch, ok := doc[at].Value.(gosops.TreeBranch)
	if !ok {
		return nil, gosops.Metadata{}, false
	}
	var md gosops.Metadata
	var lastModified string
	seen := map[string]bool{}
	for _, item := range mdBranch {
		key, ok := item.Key.(string)
		if !ok || seen[key] {
			return nil, gosops.Metadata{}, false
		}
		seen[key] = true
		if key == "age" {
			group, ok := ageGroup(item.Value)
			if !ok {
				return nil, gosops.Metadata{}, false
			}
			md.KeyGroups = []gosops.KeyGroup{group}
			continue
		}
		s, ok := item.Value.(string)
		if !ok {
			return nil, gosops.Metadata{}, false
		}
		switch key {
		case "lastmodified":
			lastModified = s
		case "mac":
			md.MessageAuthenticationCode = s
		case "encrypted_regex":
			md.EncryptedRegex = s
		case "version":
			md.Version = s
		default:
			return nil, gosops.Metadata{}, false
		}
	}
	if md.KeyGroups == nil || md.EncryptedRegex == "" || !seen["lastmodified"] {
		return nil, gosops.Metadata{}, false
	}
	t, err := time.Parse(time.RFC3339, lastModified)
	if err != nil {
		return nil, gosops.Metadata{}, false
	}
	md.LastModified = t
	rest := make(gosops.TreeBranch, 0, len(doc)-1)
	rest = append(append(rest, doc[:at]...), doc[at+1:]...)
	return gosops.TreeBranches{rest}, md, true
}

// ageGroup reads the age list of the metadata: mappings of exactly enc
// and recipient.
func ageGroup(v any) (gosops.KeyGroup, bool) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, false
	}
	group := make(gosops.KeyGroup, 0, len(list))
	for _, x := range list {
		b, ok := x.(gosops.TreeBranch)
		if !ok || len(b) != 2 {
			return nil, false
		}
		k := &sopsage.MasterKey{}
		for _, item := range b {
			s, ok := item.Value.(string)
			if !ok {
				return nil, false
			}
			switch item.Key {
			case "enc":
				if k.EncryptedKey != "" {
					return nil, false
				}
				k.EncryptedKey = s
			case "recipient":
				if k.Recipient != "" {
					return nil, false
				}
				k.Recipient = s
			default:
				return nil, false
			}
		}
		if k.EncryptedKey == "" || k.Recipient == "" {
			return nil, false
		}
		group = append(group, keys.MasterKey(k))
	}
	return group, true
}

// valueCipher is sops' AES-GCM value cipher with a fast Decrypt for string
// values as sops writes them (ENC[AES256_GCM,data:…,iv:…,tag:…,type:str],
// a 32-byte IV), using one key schedule for all the values of a file. Any
// other value, and every Encrypt, goes to sops' aes.Cipher.
type valueCipher struct {
	aes.Cipher
	key []byte
	gcm cipher.AEAD // for key and 32-byte IVs; nil until first needed
	buf []byte
}

func newValueCipher() *valueCipher { return &valueCipher{Cipher: aes.NewCipher()} }

const (
	valuePrefix = "ENC[AES256_GCM,data:"
	sopsIVSize  = 32
)

func (c *valueCipher) Decrypt(ciphertext string, key []byte, additionalData string) (any, error) {
	if v, ok := c.decryptString(ciphertext, key, additionalData); ok {
		return v, nil
	}
	return c.Cipher.Decrypt(ciphertext, key, additionalData)
}

// decryptString opens a str value; ok is false when the value is not one
// in the form sops writes, or does not open (sops then gives its error).
func (c *valueCipher) decryptString(s string, key []byte, additionalData string) (string, bool) {
	// Go's base64 decoder skips line breaks, and sops' expression does not
	// match them.
	if !strings.HasPrefix(s, valuePrefix) || !strings.HasSuffix(s, ",type:str]") || strings.ContainsAny(s, "\r\n") {
		return "", false
	}
	rest := s[len(valuePrefix) : len(s)-len(",type:str]")]
	data, rest, ok1 := strings.Cut(rest, ",iv:")
	iv, tag, ok2 := strings.Cut(rest, ",tag:")
	if !ok1 || !ok2 || data == "" { // sops' expression wants data:(.+)
		return "", false
	}
	// data, IV and tag together, decoded into one buffer: ciphertext and
	// tag adjacent, as gcm.Open wants them, then the IV. A field that is
	// not canonical base64 (and so might hold a separator sops' regular
	// expression would split elsewhere) goes to sops.
	enc := base64.StdEncoding.Strict()
	need := enc.DecodedLen(len(data)) + enc.DecodedLen(len(tag)) + enc.DecodedLen(len(iv))
	if cap(c.buf) < need {
		c.buf = make([]byte, need)
	}
	buf := c.buf[:need]
	nd, err := enc.Decode(buf, []byte(data))
	if err != nil {
		return "", false
	}
	nt, err := enc.Decode(buf[nd:], []byte(tag))
	if err != nil || nt != cryptoaes.BlockSize {
		return "", false
	}
	ni, err := enc.Decode(buf[nd+nt:], []byte(iv))
	if err != nil || ni != sopsIVSize {
		return "", false
	}
	if c.gcm == nil || !bytes.Equal(c.key, key) {
		block, err := cryptoaes.NewCipher(key)
		if err != nil {
			return "", false
		}
		if c.gcm, err = cipher.NewGCMWithNonceSize(block, sopsIVSize); err != nil {
			return "", false
		}
		c.key = bytes.Clone(key)
	}
	plain, err := c.gcm.Open(buf[:0], buf[nd+nt:nd+nt+ni], buf[:nd+nt], []byte(additionalData))
	if err != nil {
		return "", false
	}
	return string(plain), true
}

// dearmorAge decodes age's ASCII armor when it is laid out as age writes
// it: the begin line, base64 lines of 64 columns (the last one shorter or
// equal), the end line and at most a newline. ok is false for anything
// else, which armor.NewReader then reads. A carriage return is refused:
// Go's decoder would skip it in the joined lines, where age, decoding
// line by line, fails.
func dearmorAge(s string) ([]byte, bool) {
	const begin, end = "-----BEGIN AGE ENCRYPTED FILE-----\n", "\n-----END AGE ENCRYPTED FILE-----"
	s = strings.TrimSuffix(s, "\n")
	if !strings.HasPrefix(s, begin) || !strings.HasSuffix(s, end) {
		return nil, false
	}
	body := s[len(begin) : len(s)-len(end)]
	if body == "" || len(body) > 64<<10 || strings.ContainsRune(body, '\r') {
		return nil, false
	}
	b64 := make([]byte, 0, len(body))
	for body != "" {
		line, rest, more := strings.Cut(body, "\n")
		if len(line) == 0 || len(line) > 64 || (more && len(line) != 64) {
			return nil, false
		}
		b64 = append(b64, line...)
		body = rest
	}
	enc := base64.StdEncoding.Strict()
	out := make([]byte, enc.DecodedLen(len(b64)))
	n, err := enc.Decode(out, b64)
	if err != nil {
		return nil, false
	}
	return out[:n], true
}

// ageHeaderEnd returns the length of the header of the binary age file
// bin: up to and including its MAC line ("--- " and the MAC). No other
// header line can begin with "---": stanza lines begin with "-> " and
// their bodies are base64. ok is false when there is no such line.
func ageHeaderEnd(bin []byte) (int, bool) {
	i := bytes.Index(bin, []byte("\n--- "))
	if i < 0 {
		return 0, false
	}
	nl := bytes.IndexByte(bin[i+1:], '\n')
	if nl < 0 {
		return 0, false
	}
	return i + 1 + nl + 1, true
}
