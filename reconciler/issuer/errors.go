package issuer

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Class says what the caller should do after a failed Sign.
type Class int

const (
	// ClassTransient: try again with the usual backoff. Unclassified errors are
	// transient, because a wrong "permanent" would stall a certificate.
	ClassTransient Class = iota
	// ClassRetryAfter: the CA said when to come back (rate limits, Retry-After).
	ClassRetryAfter
	// ClassPermanent: nothing changes until the spec or the issuer changes (bad
	// request, rejected identifier, policy refusal, misconfiguration).
	ClassPermanent
)

func (c Class) String() string {
	switch c {
	case ClassRetryAfter:
		return "retry-after"
	case ClassPermanent:
		return "permanent"
	default:
		return "transient"
	}
}

// Error carries the retry class of a failure. Match it with errors.As, or use
// ClassOf and RetryAt.
type Error struct {
	Class Class
	// At is when to retry, for ClassRetryAfter.
	At  time.Time
	Err error
}

func (e *Error) Error() string {
	if e.Class == ClassRetryAfter {
		return fmt.Sprintf("%v (retry after %s)", e.Err, e.At.UTC().Format(time.RFC3339))
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as permanent. It returns nil for a nil err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: ClassPermanent, Err: err}
}

// Transient marks err as transient. It returns nil for a nil err.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: ClassTransient, Err: err}
}

// RetryAfter marks err as retryable not before at. It returns nil for a nil err.
func RetryAfter(at time.Time, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: ClassRetryAfter, At: at, Err: err}
}

// ClassOf returns the class of err: the outermost *Error's class, Transient
// for context cancellation and for any unclassified error.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return ClassTransient
}

// RetryAt returns the retry time of a RetryAfter error.
func RetryAt(err error) (time.Time, bool) {
	var e *Error
	if errors.As(err, &e) && e.Class == ClassRetryAfter {
		return e.At, true
	}
	return time.Time{}, false
}

// ContextErr returns a transient error wrapping ctx.Err() when ctx is done,
// nil otherwise. Backends call it before and after blocking work.
func ContextErr(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return Transient(fmt.Errorf("%s: %w", op, err))
	}
	return nil
}
