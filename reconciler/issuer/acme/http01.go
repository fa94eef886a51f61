package acme

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v5/challenge"
)

var (
	_ challenge.Provider = (*HTTP01Handler)(nil)
	_ http.Handler       = (*HTTP01Handler)(nil)
)

// HTTP01Path is where ACME servers fetch HTTP-01 tokens (RFC 8555 section 8.3).
const HTTP01Path = "/.well-known/acme-challenge/"

// HTTP01Handler is certops' HTTP-01 challenge listener: lego's challenge
// provider on one side, an http.Handler serving the presented tokens on
// the other. Mount it at HTTP01Path in the daemon's mux, or run it on its
// own address with Serve. One handler can serve every ACME issuer of the
// process; it is safe for concurrent use.
type HTTP01Handler struct {
	mu     sync.RWMutex
	tokens map[string]string // token -> key authorization
}

// NewHTTP01Handler returns an empty handler.
func NewHTTP01Handler() *HTTP01Handler { return &HTTP01Handler{tokens: map[string]string{}} }

// Present makes token answer with keyAuth.
func (h *HTTP01Handler) Present(_ context.Context, _, token, keyAuth string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tokens[token] = keyAuth
	return nil
}

// CleanUp removes token.
func (h *HTTP01Handler) CleanUp(_ context.Context, _, token, _ string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.tokens, token)
	return nil
}

// ServeHTTP answers GET/HEAD HTTP01Path<token> with the key authorization,
// and 404 for anything else.
func (h *HTTP01Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, HTTP01Path)
	if !ok || token == "" || strings.Contains(token, "/") || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	h.mu.RLock()
	ka, ok := h.tokens[token]
	h.mu.RUnlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(ka))
}

// Serve serves the handler on ln until ctx is done, then shuts down
// gracefully and returns nil.
func (h *HTTP01Handler) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
