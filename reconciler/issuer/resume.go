package issuer

import (
	"context"
	"errors"
)

// Resumer is the optional capability of a backend whose orders live at the
// CA and outlive the process (ACME). Such a backend reports each order's URL
// through Request.OnOrder as soon as the CA has created it, and Resume picks
// that order up again after a crash, so that a certificate the CA already
// issued is downloaded rather than ordered a second time (duplicate-order
// rate limits count every order).
//
// Backends that sign in one call (ca, selfSigned, vault, exec) do not
// implement it; the reconciler journals nothing for them.
type Resumer interface {
	Issuer
	// Resume continues the order at orderURL for req, whose CSR must be the
	// one the order was created with (the same key): a valid order's
	// certificate is downloaded, a ready one is finalized, a pending one has
	// its challenges solved first. An order that is invalid, expired or
	// unknown to the CA yields an error wrapping ErrReorder: the caller
	// then orders afresh. Other errors carry the usual retry classes.
	Resume(ctx context.Context, req *Request, orderURL string) (*Result, error)
}

// ErrReorder says that an order cannot be resumed (invalid, expired, gone,
// or for another key) and a fresh order is the way forward. Match it with
// errors.Is.
var ErrReorder = errors.New("issuer: the order cannot be resumed")

// OrderObserver is told the URL of the order a Resumer has just created
// for a request. It runs on the issuing goroutine before any challenge is
// solved, so it should return quickly.
type OrderObserver func(orderURL string)
