package main

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fluxcd/pkg/apis/meta"

	"certops.dev/certops/reconciler"
)

// The status page is plain server-rendered HTML: it works without
// JavaScript (filters are query parameters, history is a <details>), and
// the one script only filters instantly. Everything it loads comes from
// ui/, embedded in the binary, so it works on a host without Internet
// access and under a CSP that allows nothing else.
//
//go:embed ui
var uiFiles embed.FS

// pageCSP allows the page's own stylesheet and script and nothing inline;
// the last three directives are not covered by default-src and are closed
// too (no framing, no <base> rewrite, forms only to the page itself).
const pageCSP = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// timelineDays is the expiry timeline's span: a 90-day certificate (the
// ACME and cert-manager default lifetime) fits whole.
const timelineDays = 90

// Page states of a certificate, from its Ready condition's reason.
const (
	pageReady    = "ready"    // valid; nothing to do
	pageIssued   = "issued"   // issued or renewed in the last pass
	pageRetrying = "retrying" // failed; retried at its retry time
	pageFailed   = "failed"   // the issuer refused; waits for a change
)

var pageStates = []string{pageReady, pageIssued, pageRetrying, pageFailed}

// historyEntry is one issuance of a certificate.
type historyEntry struct {
	Time     time.Time // when it was issued (the commit's time)
	Commit   string    // the commit that recorded it ("" when unknown)
	Serial   string
	NotAfter time.Time
	Issuer   string
	Reason   string
}

// historyReader reads a certificate's issuance history, newest first. The
// status page uses it when set; without one it shows the last issuance
// the daemon's status knows. Implementations must be safe for concurrent
// use: every page request calls Events once per certificate.
type historyReader interface {
	Events(ctx context.Context, name string) ([]historyEntry, error)
}

// statusPage serves GET / and the embedded assets under /ui/.
type statusPage struct {
	status  func() reconciler.Status
	history historyReader // optional
	now     func() time.Time
	log     *slog.Logger
	tmpl    *template.Template
}

// registerStatusPage adds the status page to mux. history may be nil.
func registerStatusPage(mux *http.ServeMux, log *slog.Logger, status func() reconciler.Status, history historyReader) {
	newStatusPage(log, status, history).register(mux)
}

func (p *statusPage) register(mux *http.ServeMux) {
	static, err := fs.Sub(uiFiles, "ui/static")
	if err != nil {
		panic(err) // the folder is embedded; a missing one is a build defect
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(static))
	mux.Handle("GET /ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		files.ServeHTTP(w, r)
	}))
	mux.Handle("GET /{$}", p)
}

func newStatusPage(log *slog.Logger, status func() reconciler.Status, history historyReader) *statusPage {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &statusPage{status: status, history: history, now: time.Now, log: log,
		tmpl: template.Must(template.New("page.html.tmpl").Funcs(pageFuncs).ParseFS(uiFiles, "ui/page.html.tmpl"))}
}

func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

func (p *statusPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	q := r.URL.Query()
	state, issuer := q.Get("state"), q.Get("issuer")
	if state != "" && !slices.Contains(pageStates, state) {
		http.Error(w, fmt.Sprintf("status page: query parameter state: unknown value %q (want one of %s)",
			state, strings.Join(pageStates, ", ")), http.StatusBadRequest)
		return
	}
	view := p.view(r.Context(), p.status(), p.now(), state, issuer)
	var buf bytes.Buffer
	if err := p.tmpl.Execute(&buf, view); err != nil {
		p.log.Error("rendering the status page", "error", err)
		http.Error(w, "status page: rendering failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// pageView is what the template renders.
type pageView struct {
	Now                  time.Time
	Status               reconciler.Status
	State, Issuer        string // the filters
	States, Issuers      []string
	Certs                []pageCert
	Shown                int
	Timeline             timeline
	HistoryFromGit       bool
	PassFailed, Problems bool
}

// pageCert is one certificate's row and timeline marker.
type pageCert struct {
	reconciler.CertificateStatus
	State   string
	Message string // the Ready condition's message
	Hidden  bool   // filtered out on the server
	History []historyEntry
	// HistoryError is set when the reader failed; the details are logged.
	HistoryError bool
}

func (p *statusPage) view(ctx context.Context, st reconciler.Status, now time.Time, state, issuer string) pageView {
	v := pageView{Now: now, Status: st, State: state, Issuer: issuer, States: pageStates,
		HistoryFromGit: p.history != nil, PassFailed: st.Error != "", Problems: len(st.Problems) > 0}
	for _, c := range st.Certificates {
		pc := pageCert{CertificateStatus: c}
		pc.State, pc.Message = certState(c)
		pc.Hidden = (state != "" && pc.State != state) || (issuer != "" && c.Issuer != issuer)
		if !pc.Hidden {
			v.Shown++
		}
		if p.history != nil {
			h, err := p.history.Events(ctx, c.Name)
			if err != nil {
				p.log.Warn("reading issuance history", "cert", c.Name, "error", err)
				pc.HistoryError = true
			}
			pc.History = h
		} else {
			pc.History = lastIssuance(st, c)
		}
		if c.Issuer != "" && !slices.Contains(v.Issuers, c.Issuer) {
			v.Issuers = append(v.Issuers, c.Issuer)
		}
		v.Certs = append(v.Certs, pc)
	}
	if issuer != "" && !slices.Contains(v.Issuers, issuer) {
		v.Issuers = append(v.Issuers, issuer) // keep the user's choice selectable
	}
	slices.Sort(v.Issuers)
	v.Timeline = newTimeline(v.Certs, now)
	return v
}

// certState maps the Ready condition to a page state.
func certState(c reconciler.CertificateStatus) (state, message string) {
	for _, cond := range c.Conditions {
		if cond.Type != meta.ReadyCondition {
			continue
		}
		switch cond.Reason {
		case reconciler.ReasonIssued:
			return pageIssued, cond.Message
		case reconciler.ReasonBackoff:
			return pageRetrying, cond.Message
		case reconciler.ReasonIssuerFailed:
			return pageFailed, cond.Message
		}
		return pageReady, cond.Message
	}
	if c.Error != "" {
		return pageFailed, c.Error
	}
	return pageReady, ""
}

// lastIssuance is the history the status alone can tell: the issuance of
// the last pass, or the validity of the certificate in Git.
func lastIssuance(st reconciler.Status, c reconciler.CertificateStatus) []historyEntry {
	switch {
	case c.Serial != "" && c.Error == "":
		return []historyEntry{{Time: cmp.Or(st.LastPass, c.NotBefore), Commit: st.Commit, Serial: c.Serial,
			NotAfter: c.NotAfter, Issuer: c.Issuer, Reason: string(c.Reason)}}
	case !c.NotBefore.IsZero():
		return []historyEntry{{Time: c.NotBefore, NotAfter: c.NotAfter, Issuer: c.Issuer}}
	}
	return nil
}

// timeline is the geometry of the expiry timeline's SVG: one lane per
// certificate, soonest expiry first, now at the left edge and now+90 days
// at the right.
type timeline struct {
	Width, Height int
	X0, X1        int // the plot's left and right edges
	Ticks         []timelineTick
	Markers       []timelineMarker
}

type timelineTick struct {
	X     float64
	Label string
}

type timelineMarker struct {
	Cert, State, Issuer string
	Hidden              bool
	Y                   int     // the lane's centre line
	X                   float64 // the expiry (or the edge it is clamped to)
	RenewX              float64 // the renewal time; equal to X when none is known
	Kind                string  // expires, later (after the span), expired, missing (never issued)
	Title               string
}

const (
	tlWidth, tlLeft, tlRight = 960, 190, 940
	tlTop, tlLane            = 36, 24
)

func newTimeline(certs []pageCert, now time.Time) timeline {
	tl := timeline{Width: tlWidth, X0: tlLeft, X1: tlRight, Height: tlTop + len(certs)*tlLane + 8}
	span := time.Duration(timelineDays) * 24 * time.Hour
	x := func(t time.Time) float64 {
		f := float64(t.Sub(now)) / float64(span)
		f = min(max(f, 0), 1)
		return float64(tlLeft) + f*float64(tlRight-tlLeft)
	}
	for d := 0; d <= timelineDays; d += 15 {
		at := now.Add(time.Duration(d) * 24 * time.Hour)
		tl.Ticks = append(tl.Ticks, timelineTick{X: x(at), Label: at.UTC().Format("Jan 02")})
	}
	order := slices.Clone(certs)
	slices.SortStableFunc(order, func(a, b pageCert) int {
		return a.NotAfter.Compare(b.NotAfter) // never issued (zero) first
	})
	for i, c := range order {
		m := timelineMarker{Cert: c.Name, State: c.State, Issuer: c.Issuer, Hidden: c.Hidden, Y: tlTop + i*tlLane + tlLane/2}
		switch {
		case c.NotAfter.IsZero():
			m.Kind, m.Title = "missing", c.Name+": not issued"
		case c.NotAfter.Before(now):
			m.Kind, m.Title = "expired", c.Name+": expired "+pageTime(c.NotAfter)
		case c.NotAfter.Sub(now) > span:
			m.Kind, m.Title = "later", c.Name+": expires "+pageTime(c.NotAfter)+", after the timeline"
		default:
			m.Kind, m.Title = "expires", c.Name+": expires "+pageTime(c.NotAfter)
		}
		m.X = x(c.NotAfter)
		m.RenewX = m.X
		if !c.RenewAt.IsZero() && !c.NotAfter.IsZero() && c.RenewAt.Before(c.NotAfter) {
			m.RenewX = x(c.RenewAt)
			m.Title += ", renews " + pageTime(c.RenewAt)
		}
		tl.Markers = append(tl.Markers, m)
	}
	return tl
}

func pageTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// relTime is a short duration from now: "in 29d 3h", "2h ago".
func relTime(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := t.Sub(now)
	suffix, prefix := "", "in "
	if d < 0 {
		d, suffix, prefix = -d, " ago", ""
	}
	var s string
	switch {
	case d >= 24*time.Hour:
		s = strconv.Itoa(int(d/(24*time.Hour))) + "d " + strconv.Itoa(int(d%(24*time.Hour)/time.Hour)) + "h"
	case d >= time.Hour:
		s = strconv.Itoa(int(d/time.Hour)) + "h " + strconv.Itoa(int(d%time.Hour/time.Minute)) + "m"
	default:
		s = strconv.Itoa(int(d/time.Minute)) + "m"
	}
	return prefix + s + suffix
}

var pageFuncs = template.FuncMap{
	"time":  pageTime,
	"rel":   relTime,
	"short": short,
	"f1":    func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"add":   func(a, b int) int { return a + b },
}
