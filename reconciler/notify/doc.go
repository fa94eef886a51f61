// Package notify delivers certops' events to a webhook: one JSON POST per
// event, signed with HMAC-SHA256 over the body (header X-Certops-Signature:
// sha256=<hex>), retried with exponential backoff on network errors, 5xx
// and 429 (honouring Retry-After), and given up after a bounded number of
// attempts.
//
// What it does not do: queue (the reconciler queues per sink and calls
// Notify from its own goroutine), or send key material: the payload is
// reconciler.Event, which holds none. The URL's userinfo and query are
// redacted from logs and errors.
//
// A Webhook is safe for concurrent use.
package notify
