package acme

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"

	"certops.dev/certops/reconciler/issuer"
)

// orderWatch is what Sign puts in the request context so that the
// transport can report the new order's URL (the Location of the 201
// response, RFC 8555 section 7.4) while lego is still working on it.
type orderWatch struct {
	newOrderURL string
	observe     issuer.OrderObserver
}

type orderWatchKey struct{}

// statusProbe records the HTTP status of the last answer for one URL:
// lego keeps the status only when the CA sends a problem document, and
// Pebble answers an unknown order with a bare 404.
type statusProbe struct {
	url    string
	status atomic.Int32
}

type statusProbeKey struct{}

// watchOrders returns ctx carrying observe for the issuer's new-order
// endpoint; a nil observe, or an issuer without a directory yet, returns
// ctx unchanged.
func (i *Issuer) watchOrders(ctx context.Context, observe issuer.OrderObserver) context.Context {
	if observe == nil {
		return ctx
	}
	i.mu.Lock()
	core := i.core
	i.mu.Unlock()
	if core == nil {
		return ctx
	}
	return context.WithValue(ctx, orderWatchKey{}, &orderWatch{newOrderURL: core.GetDirectory().NewOrderURL, observe: observe})
}

// orderTransport reports the Location of a successful new-order response
// to the orderWatch of the request's context, if any.
type orderTransport struct{ base http.RoundTripper }

func (t orderTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if sp, _ := r.Context().Value(statusProbeKey{}).(*statusProbe); sp != nil && err == nil && r.URL.String() == sp.url {
		sp.status.Store(int32(resp.StatusCode))
	}
	if err != nil || resp.StatusCode != http.StatusCreated || r.Method != http.MethodPost {
		return resp, err
	}
	w, _ := r.Context().Value(orderWatchKey{}).(*orderWatch)
	if w == nil || r.URL.String() != w.newOrderURL {
		return resp, err
	}
	if loc, perr := r.URL.Parse(resp.Header.Get("Location")); perr == nil && loc.String() != r.URL.String() {
		w.observe(loc.String())
	}
	return resp, err
}

// orderPollTimeout bounds the wait for a finalized order to turn valid;
// the same two minutes lazyClient gives lego's own wait (Certificate.Timeout).
const orderPollTimeout = 2 * time.Minute

// orderPollInterval is lego's interval for the same wait (its timeout / 60).
const orderPollInterval = orderPollTimeout / 60

// Resume continues the order at orderURL (see issuer.Resumer): a valid
// order's certificate is downloaded without a new order, a ready one is
// finalized with req's CSR, a pending one has its challenges solved first.
// An invalid or unknown order, or a certificate for another key, yields an
// error wrapping issuer.ErrReorder.
func (i *Issuer) Resume(ctx context.Context, req *issuer.Request, orderURL string) (*issuer.Result, error) {
	if err := issuer.ContextErr(ctx, "acme: resume "+req.Name); err != nil {
		return nil, err
	}
	client, err := i.lazyClient(ctx)
	if err != nil {
		return nil, err
	}
	i.mu.Lock()
	core, prober := i.core, i.prober
	i.mu.Unlock()
	probe := &statusProbe{url: orderURL}
	ctx = context.WithValue(ctx, statusProbeKey{}, probe)
	fail := func(err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return issuer.Transient(fmt.Errorf("acme: resume %s: %w (%w)", req.Name, cerr, err))
		}
		if s := probe.status.Load(); gone(err) || s == http.StatusNotFound || s == http.StatusForbidden {
			return fmt.Errorf("acme: resume %s: %w: %w", req.Name, issuer.ErrReorder, err)
		}
		return classify(fmt.Errorf("acme: resume %s: %w", req.Name, err))
	}
	ext, err := core.Orders.Get(ctx, orderURL)
	if err != nil {
		return nil, fail(err)
	}
	order := ext.Order
	if order.Status == legoacme.StatusPending {
		authz := make([]legoacme.Authorization, 0, len(order.Authorizations))
		for _, u := range order.Authorizations {
			a, err := core.Authorizations.Get(ctx, u)
			if err != nil {
				return nil, fail(err)
			}
			authz = append(authz, a)
		}
		if err := prober.Solve(ctx, authz); err != nil {
			return nil, fail(err)
		}
		if order, err = i.waitOrder(ctx, core.Orders.Get, orderURL, legoacme.StatusPending); err != nil {
			return nil, fail(err)
		}
	}
	if order.Status == legoacme.StatusReady {
		if _, err := core.Orders.UpdateForCSR(ctx, order.Finalize, req.CSR.Raw); err != nil {
			return nil, fail(err)
		}
		if order, err = i.waitOrder(ctx, core.Orders.Get, orderURL, legoacme.StatusReady, legoacme.StatusProcessing); err != nil {
			return nil, fail(err)
		}
	}
	if order.Status == legoacme.StatusProcessing {
		if order, err = i.waitOrder(ctx, core.Orders.Get, orderURL, legoacme.StatusProcessing); err != nil {
			return nil, fail(err)
		}
	}
	if order.Status != legoacme.StatusValid || order.Certificate == "" {
		return nil, fmt.Errorf("acme: resume %s: order is %s: %w", req.Name, order.Status, issuer.ErrReorder)
	}
	certs, err := core.Certificates.GetAll(ctx, order.Certificate, true)
	if err != nil {
		return nil, fail(err)
	}
	chosen := certs[order.Certificate]
	if pc := i.cfg.PreferredChain; pc != "" {
		for _, c := range certs {
			if top, err := issuer.ParseCertificatesPEM(c.Issuer); err == nil && len(top) > 0 && top[len(top)-1].Issuer.CommonName == pc {
				chosen = c
				break
			}
		}
	}
	if chosen == nil {
		return nil, issuer.Transient(fmt.Errorf("acme: resume %s: the CA sent no certificate", req.Name))
	}
	chain, err := issuer.ParseCertificatesPEM(chosen.Cert)
	if err != nil || len(chain) == 0 {
		return nil, issuer.Transient(fmt.Errorf("acme: resume %s: certificate from the CA: %w", req.Name, errors.Join(err, errors.New("empty chain"))))
	}
	if !issuer.SamePublicKey(chain[0].PublicKey, req.CSR.PublicKey) {
		// The journal and the order disagree: nothing to salvage.
		return nil, fmt.Errorf("acme: resume %s: the order's certificate is for another key: %w", req.Name, issuer.ErrReorder)
	}
	i.log.Info("acme: order resumed", "cert", req.Name)
	return i.result(ctx, client, req, chosen.Cert)
}

// waitOrder polls the order until its status leaves the given ones.
func (i *Issuer) waitOrder(ctx context.Context, get func(context.Context, string) (legoacme.ExtendedOrder, error), orderURL string, while ...string) (legoacme.Order, error) {
	ctx, cancel := context.WithTimeout(ctx, orderPollTimeout)
	defer cancel()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return legoacme.Order{}, fmt.Errorf("waiting for the order: %w", ctx.Err())
		case <-t.C:
		}
		ext, err := get(ctx, orderURL)
		if err != nil {
			return legoacme.Order{}, err
		}
		still := false
		for _, s := range while {
			still = still || ext.Status == s
		}
		if !still {
			return ext.Order, nil
		}
		t.Reset(orderPollInterval)
	}
}

// gone reports whether err says the order does not exist (any more) for
// this account: the CA answers 404 for an unknown or purged order and 403
// for an order of another account.
func gone(err error) bool {
	var pd *legoacme.ProblemDetails
	return errors.As(err, &pd) && (pd.HTTPStatus == http.StatusNotFound || pd.HTTPStatus == http.StatusForbidden)
}
