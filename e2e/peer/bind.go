package peer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BIND is a running BIND 9 (Debian's named) serving one zone on loopback
// that accepts TSIG-signed dynamic updates of TXT records, for DNS-01 with
// lego's RFC 2136 provider (dnsupdate). Every name in the zone resolves to
// 127.0.0.1 (a wildcard A record), so HTTP-01 validation reaches loopback.
type BIND struct {
	// Addr is host:port, UDP and TCP.
	Addr string
	// Zone is the zone's name without the trailing dot.
	Zone string
	// TSIGName, TSIGAlgorithm and TSIGSecret are the update key (test-only).
	TSIGName, TSIGAlgorithm, TSIGSecret string
	// TSIGFile is the key in named.conf syntax, as `tsig-keygen` writes it.
	TSIGFile string
}

// StartBIND starts named as nobody on a free loopback port with zone
// (e.g. "example.test"). It fails the test when named is not installed.
func StartBIND(t testing.TB, zone string) *BIND {
	t.Helper()
	named := System(t, "named")
	keygen := System(t, "tsig-keygen")
	runuser := System(t, "runuser")

	// named drops to nobody, which cannot enter t.TempDir() (mode 0700 under
	// a 0700 parent), so it gets its own world-traversable directory.
	dir, err := os.MkdirTemp("", "certops-bind-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	b := &BIND{Zone: zone, TSIGName: "certops-test", TSIGAlgorithm: "hmac-sha256."}
	keyConf, err := exec.Command(keygen, "-a", "hmac-sha256", b.TSIGName).Output()
	if err != nil {
		t.Fatalf("tsig-keygen: %v", err)
	}
	for _, l := range strings.Split(string(keyConf), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "secret \""); ok {
			b.TSIGSecret = strings.TrimSuffix(s, "\";")
		}
	}
	if b.TSIGSecret == "" {
		t.Fatal("tsig-keygen wrote no secret")
	}
	b.TSIGFile = filepath.Join(dir, "tsig.key")
	port := freeDNSPort(t)
	b.Addr = fmt.Sprintf("127.0.0.1:%d", port)

	zoneFile := fmt.Sprintf(`$TTL 60
@   IN SOA ns.%[1]s. hostmaster.%[1]s. 1 60 60 600 60
@   IN NS  ns.%[1]s.
ns  IN A   127.0.0.1
@   IN A   127.0.0.1
*   IN A   127.0.0.1
`, zone)
	conf := fmt.Sprintf(`include "%[1]s/tsig.key";
options {
	directory "%[1]s";
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	notify no;
};
controls { };
zone "%[3]s" {
	type primary;
	file "%[1]s/zone.db";
	journal "%[1]s/zone.db.jnl";
	update-policy { grant %[4]s zonesub TXT; };
};
`, dir, port, zone, b.TSIGName)
	for name, data := range map[string]string{"tsig.key": string(keyConf), "zone.db": zoneFile, "named.conf": conf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := exec.Command("chown", "-R", "nobody:nogroup", dir).Run(); err != nil {
		t.Fatalf("chown %s to nobody: %v", dir, err)
	}

	logPath := filepath.Join(t.TempDir(), "named.log")
	cmd := exec.Command(runuser, "-u", "nobody", "--", named, "-g", "-c", filepath.Join(dir, "named.conf"), "-p", fmt.Sprint(port))
	exited := startLogged(t, "named", cmd, logPath)

	c := &dns.Client{Timeout: 500 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	deadline := time.Now().Add(90 * time.Second) // generous: CI machines are shared and loaded
	for {
		r, _, err := c.ExchangeContext(context.Background(), m, b.Addr)
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
			return b
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(logPath)
			t.Fatalf("named exited:\n%s", out)
		default:
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logPath)
			t.Fatalf("named not answering on %s: %v\n%s", b.Addr, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TXT returns the TXT values of name (a fully qualified name), asked
// directly of this server.
func (b *BIND) TXT(t testing.TB, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	r, _, err := (&dns.Client{Timeout: 10 * time.Second}).Exchange(m, b.Addr)
	if err != nil {
		t.Fatalf("query TXT %s: %v", name, err)
	}
	var out []string
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out
}
