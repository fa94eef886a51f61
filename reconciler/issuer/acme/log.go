package acme

import (
	"log/slog"

	legolog "github.com/go-acme/lego/v5/log"
)

// SetLibraryLogger routes lego's own log lines (process-global in lego) to
// l; nil discards them. The daemon calls it once at start-up.
func SetLibraryLogger(l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	legolog.SetDefault(l)
}
