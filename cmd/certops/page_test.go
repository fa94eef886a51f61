package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"

	"certops.dev/certops/reconciler"
	"certops.dev/certops/spec"
)

var pageNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// pageStatus is a status derived (by the reconciler's own StatusOf) from a
// report with one certificate in each page state and each timeline kind.
func pageStatus() reconciler.Status {
	day := 24 * time.Hour
	return reconciler.StatusOf(&reconciler.Report{Started: pageNow.Add(-time.Minute), Commit: "0123456789abcdef", Pushed: "0123456789abcdef",
		Results: []reconciler.CertResult{
			{Name: "api/api", Issuer: "internal-ca", Action: spec.ActionNone, Reason: spec.ReasonUpToDate,
				NotBefore: pageNow.Add(-45 * day), NotAfter: pageNow.Add(45 * day), RenewAt: pageNow.Add(15 * day),
				Targets: []string{"dev/api/api-tls", "prod/api/api-tls"}},
			{Name: "api/broken", Issuer: "broken-ca", Action: spec.ActionIssue, Reason: spec.ReasonDoesNotExist,
				Error: `ca issuer broken-ca: no certificate writes Secret <script>alert(1)</script>`},
			{Name: "platform/root-ca", Issuer: "selfsigned-root", Action: spec.ActionIssue, Reason: spec.ReasonDoesNotExist,
				Serial: "abc123", NotBefore: pageNow.Add(-time.Minute), NotAfter: pageNow.Add(3650 * day), RenewAt: pageNow.Add(2400 * day)},
			{Name: "web/old", Issuer: "internal-ca", Action: spec.ActionRenew, Reason: spec.ReasonExpired,
				NotAfter: pageNow.Add(-day), Error: "issuer unreachable", RetryAt: pageNow.Add(time.Hour)},
		}})
}

func servePage(t *testing.T, hist historyReader, target string) (*httptest.ResponseRecorder, string) {
	t.Helper()
	p := newStatusPage(nil, pageStatus, hist)
	p.now = func() time.Time { return pageNow }
	mux := http.NewServeMux()
	p.register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec, rec.Body.String()
}

// elements returns the elements of doc for which match is true.
func elements(t *testing.T, doc string, match func(*html.Node) bool) []*html.Node {
	t.Helper()
	root, err := html.Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	var out []*html.Node
	for n := range root.Descendants() {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
	}
	return out
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func hasClass(n *html.Node, class string) bool {
	v, _ := attr(n, "class")
	return slices.Contains(strings.Fields(v), class)
}

// visible lists data-cert of the rows (tr) or markers (g) not hidden.
func visible(t *testing.T, doc, tag string) []string {
	var out []string
	for _, n := range elements(t, doc, func(n *html.Node) bool { _, ok := attr(n, "data-cert"); return n.Data == tag && ok }) {
		if _, hidden := attr(n, "hidden"); !hidden {
			v, _ := attr(n, "data-cert")
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

func TestStatusPageFiltersOnTheServer(t *testing.T) {
	all := []string{"api/api", "api/broken", "platform/root-ca", "web/old"}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", all},
		{"?state=ready", []string{"api/api"}},
		{"?state=failed", []string{"api/broken"}},
		{"?state=retrying", []string{"web/old"}},
		{"?state=issued", []string{"platform/root-ca"}},
		{"?issuer=internal-ca", []string{"api/api", "web/old"}},
		{"?issuer=internal-ca&state=retrying", []string{"web/old"}},
		{"?issuer=nobody", nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			resp, body := servePage(t, nil, "/"+tc.query)
			if resp.Code != http.StatusOK {
				t.Fatalf("status %d: %s", resp.Code, body)
			}
			if diff := cmp.Diff(tc.want, visible(t, body, "tr")); diff != "" {
				t.Errorf("visible rows (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, visible(t, body, "g")); diff != "" {
				t.Errorf("visible timeline markers (-want +got):\n%s", diff)
			}
			// Every certificate is in the page, hidden or not, so the
			// script can show it again without a reload.
			rows := elements(t, body, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "cert") })
			if len(rows) != len(all) {
				t.Errorf("%d rows, want %d", len(rows), len(all))
			}
			count := elements(t, body, func(n *html.Node) bool { v, _ := attr(n, "id"); return v == "shown-count" })
			if len(count) != 1 || count[0].FirstChild == nil || count[0].FirstChild.Data != strconv.Itoa(len(tc.want)) {
				t.Errorf("shown count element %v, want %d", count, len(tc.want))
			}
		})
	}
	resp, body := servePage(t, nil, "/?state=bogus")
	if resp.Code != http.StatusBadRequest || !strings.Contains(body, "state") || !strings.Contains(body, `"bogus"`) {
		t.Errorf("unknown state: %d %q, want 400 naming the parameter and value", resp.Code, body)
	}
}

func TestStatusPageIsSelfContained(t *testing.T) {
	resp, body := servePage(t, nil, "/")
	csp := resp.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "style-src 'self'", "script-src 'self'", "img-src 'self' data:"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP %q allows inline code", csp)
	}
	// No inline script or style, no external asset: every reference is to
	// the page's own /ui/ folder.
	var refs []string
	for _, n := range elements(t, body, func(*html.Node) bool { return true }) {
		if _, ok := attr(n, "style"); ok || n.Data == "style" {
			t.Errorf("inline style on <%s>", n.Data)
		}
		if strings.HasPrefix(n.Data, "on") {
			t.Errorf("element %s", n.Data)
		}
		for _, a := range n.Attr {
			if strings.HasPrefix(a.Key, "on") {
				t.Errorf("inline handler %s on <%s>", a.Key, n.Data)
			}
		}
		if n.Data == "script" {
			if src, ok := attr(n, "src"); !ok || n.FirstChild != nil {
				t.Errorf("inline script (src %q)", src)
			}
		}
		for _, key := range []string{"src", "href"} {
			if v, ok := attr(n, key); ok {
				refs = append(refs, v)
				if !strings.HasPrefix(v, "/ui/") {
					t.Errorf("<%s %s=%q> is not one of the page's own assets", n.Data, key, v)
				}
			}
		}
	}
	if diff := cmp.Diff([]string{"/ui/style.css", "/ui/page.js"}, refs); diff != "" {
		t.Errorf("assets (-want +got):\n%s", diff)
	}
	for _, ref := range refs {
		resp, body := servePage(t, nil, ref)
		if resp.Code != http.StatusOK || len(body) == 0 {
			t.Errorf("%s: %d, %d bytes", ref, resp.Code, len(body))
		}
		if resp.Header().Get("Content-Security-Policy") == "" {
			t.Errorf("%s served without a CSP", ref)
		}
	}
	if resp, _ := servePage(t, nil, "/ui/page.html.tmpl"); resp.Code != http.StatusNotFound {
		t.Errorf("the template is served: %d", resp.Code)
	}
	// Text from outside (an issuer's error) is escaped.
	if strings.Contains(body, "<script>alert(1)") || !strings.Contains(body, "&lt;script&gt;alert(1)") {
		t.Error("the error message is not escaped")
	}
}

func TestStatusPageTimeline(t *testing.T) {
	_, body := servePage(t, nil, "/")
	markers := elements(t, body, func(n *html.Node) bool { return n.Data == "g" && hasClass(n, "marker") })
	type marker struct {
		Cert, Kind string
		X          float64
		Renewal    bool
	}
	var got []marker
	for _, g := range markers {
		m := marker{}
		m.Cert, _ = attr(g, "data-cert")
		for _, k := range []string{"expires", "later", "expired", "missing"} {
			if hasClass(g, "kind-"+k) {
				m.Kind = k
			}
		}
		for c := range g.Descendants() {
			switch {
			case c.Data == "circle":
				v, _ := attr(c, "cx")
				m.X, _ = strconv.ParseFloat(v, 64)
			case c.Data == "line" && hasClass(c, "renewal"):
				m.Renewal = true
			}
		}
		got = append(got, m)
	}
	mid := float64(tlLeft+tlRight) / 2
	// Lanes run soonest expiry first; never issued before all.
	want := []marker{
		{"api/broken", "missing", tlLeft, false},
		{"web/old", "expired", tlLeft, false},
		{"api/api", "expires", mid, true},
		{"platform/root-ca", "later", tlRight, false}, // renews after the span too
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline markers (-want +got):\n%s", diff)
	}
}

type fakeHistory map[string][]historyEntry

func (f fakeHistory) Events(_ context.Context, name string) ([]historyEntry, error) {
	if name == "web/old" {
		return nil, errors.New("git log: reading token=s3cret")
	}
	return f[name], nil
}

func TestStatusPageHistory(t *testing.T) {
	// Without a reader: the last issuance the status knows.
	_, body := servePage(t, nil, "/")
	hist := func(body, cert string) string {
		for _, tr := range elements(t, body, func(n *html.Node) bool { v, _ := attr(n, "data-cert"); return n.Data == "tr" && v == cert }) {
			for td := range tr.Descendants() {
				if td.Data == "td" && hasClass(td, "history") {
					var b strings.Builder
					for c := range td.Descendants() {
						if c.Type == html.TextNode {
							b.WriteString(c.Data)
						}
					}
					return strings.Join(strings.Fields(b.String()), " ")
				}
			}
		}
		t.Fatalf("no history cell for %s", cert)
		return ""
	}
	for cert, want := range map[string]string{
		"platform/root-ca": "1 issuance (last known) 2026-12-01 11:59 UTC · serial abc123 · until 2036-11-28 12:00 UTC · DoesNotExist · 0123456",
		"api/api":          "1 issuance (last known) 2026-10-17 12:00 UTC · until 2027-01-15 12:00 UTC",
		"api/broken":       "never issued",
	} {
		if got := hist(body, cert); got != want {
			t.Errorf("%s history: got %q, want %q", cert, got, want)
		}
	}
	// With a reader: its entries; a failing read says so without details.
	reader := fakeHistory{"api/api": {
		{Time: pageNow.Add(-45 * 24 * time.Hour), Commit: "feedface00", Serial: "02", NotAfter: pageNow.Add(45 * 24 * time.Hour), Issuer: "internal-ca", Reason: "Renewing"},
		{Time: pageNow.Add(-90 * 24 * time.Hour), Commit: "cafe000000", Serial: "01", Issuer: "internal-ca", Reason: "DoesNotExist"},
	}}
	_, body = servePage(t, reader, "/")
	if got, want := hist(body, "api/api"), "2 issuances 2026-10-17 12:00 UTC · serial 02 · until 2027-01-15 12:00 UTC · Renewing · feedfac 2026-09-02 12:00 UTC · serial 01 · DoesNotExist · cafe000"; got != want {
		t.Errorf("api/api history: got %q, want %q", got, want)
	}
	if got := hist(body, "web/old"); got != "history unavailable" {
		t.Errorf("web/old history: got %q, want %q", got, "history unavailable")
	}
	if strings.Contains(body, "s3cret") {
		t.Error("the history reader's error reached the page")
	}
}
