package gitsource

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/skeema/knownhosts"
)

// Errors the caller must react to; match them with errors.Is.
var (
	// ErrNotFound: the repository, the branch or a commit does not exist, or
	// the remote is empty.
	ErrNotFound = errors.New("not found")
	// ErrAuth: the remote refused the credentials (or asked for some).
	ErrAuth = errors.New("authentication failed")
	// ErrHostKey: the SSH host key is unknown or differs from known_hosts.
	ErrHostKey = errors.New("ssh host key not trusted")
	// ErrNonFastForward: the remote branch moved and the push could not be
	// rebased within the allowed attempts.
	ErrNonFastForward = errors.New("non-fast-forward")
	// ErrVerification: the commit is unsigned or signed by an untrusted key.
	ErrVerification = errors.New("signature verification failed")
)

// Error is a failure of one operation against the repository. Its message
// never holds URL user-info, passwords or tokens; Kind is one of the Err*
// values above or nil.
type Error struct {
	Op   string // "poll", "fetch", "push", "commit", ...
	URL  string // redacted
	Kind error
	msg  string // redacted cause
	ctx  error  // context.Canceled or DeadlineExceeded, kept for errors.Is
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("gitsource: ")
	b.WriteString(e.Op)
	if e.URL != "" {
		b.WriteString(" ")
		b.WriteString(e.URL)
	}
	if e.Kind != nil {
		b.WriteString(": ")
		b.WriteString(e.Kind.Error())
	}
	if e.msg != "" {
		b.WriteString(": ")
		b.WriteString(e.msg)
	}
	return b.String()
}

// Unwrap exposes the kind and a context error; the raw cause is not kept,
// because transports may quote the credentials in it.
func (e *Error) Unwrap() []error {
	var out []error
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.ctx != nil {
		out = append(out, e.ctx)
	}
	return out
}

// RedactURL removes user-info (user name, password, token) from a Git URL.
// scp-like SSH addresses (git@host:path) keep the user name, which is not a
// secret. Anything unparsable is replaced entirely.
func RedactURL(raw string) string {
	if !strings.Contains(raw, "://") {
		if i := strings.Index(raw, "@"); i >= 0 && strings.Contains(raw[i:], ":") {
			user := raw[:i]
			if strings.ContainsAny(user, ":/") { // user:password@ — not scp-like
				return "<redacted>" + raw[i:]
			}
		}
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable url>"
	}
	u.User = nil
	return u.String()
}

// secrets collects the strings an error message must never contain.
type secrets []string

func (s secrets) scrub(msg string) string {
	for _, v := range s {
		if len(v) >= 3 {
			msg = strings.ReplaceAll(msg, v, "<redacted>")
		}
	}
	return msg
}

// wrap turns any error into an *Error of the right kind with a scrubbed
// message; nil stays nil.
func (r *Repo) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var ge *Error
	if errors.As(err, &ge) {
		return err
	}
	e := &Error{Op: op, URL: r.redacted, Kind: classify(err)}
	if errors.Is(err, context.Canceled) {
		e.ctx = context.Canceled
	} else if errors.Is(err, context.DeadlineExceeded) {
		e.ctx = context.DeadlineExceeded
	}
	e.msg = strings.TrimPrefix(r.secrets.scrub(err.Error()), "gitsource: ")
	if e.Kind != nil {
		// The kind is printed once, before the cause.
		e.msg = strings.TrimRight(strings.Replace(e.msg, e.Kind.Error()+": ", "", 1), ": ")
		if e.msg == e.Kind.Error() {
			e.msg = ""
		}
	}
	return e
}

func newError(op, url string, kind error, msg string) *Error {
	return &Error{Op: op, URL: url, Kind: kind, msg: msg}
}

// classify maps transport and storage errors onto the package's kinds.
func classify(err error) error {
	for _, k := range []error{ErrNotFound, ErrAuth, ErrHostKey, ErrNonFastForward, ErrVerification} {
		if errors.Is(err, k) {
			return k
		}
	}
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		errors.Is(err, transport.ErrInvalidAuthMethod):
		return ErrAuth
	case errors.Is(err, transport.ErrRepositoryNotFound),
		errors.Is(err, transport.ErrEmptyRemoteRepository),
		errors.Is(err, plumbing.ErrReferenceNotFound),
		errors.Is(err, plumbing.ErrObjectNotFound),
		errors.Is(err, git.ErrBranchNotFound):
		return ErrNotFound
	case knownhosts.IsHostKeyChanged(err), knownhosts.IsHostUnknown(err):
		return ErrHostKey
	case errors.Is(err, git.ErrNonFastForwardUpdate), errors.Is(err, git.ErrForceNeeded):
		return ErrNonFastForward
	}
	var nm git.NoMatchingRefSpecError
	if errors.As(err, &nm) {
		return ErrNotFound
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "knownhosts: key mismatch"), strings.Contains(msg, "knownhosts: key is unknown"):
		return ErrHostKey
	case strings.Contains(msg, "unable to authenticate"), strings.Contains(msg, "no supported methods remain"):
		return ErrAuth
	case strings.Contains(msg, "does not appear to be a git repository"), strings.Contains(msg, "couldn't find remote ref"):
		return ErrNotFound
	case strings.Contains(msg, "non-fast-forward"), strings.Contains(msg, "fetch first"):
		return ErrNonFastForward
	}
	return nil
}
