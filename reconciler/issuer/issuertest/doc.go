// Package issuertest is the conformance suite every issuer backend's tests
// run, modelled on cert-manager's issuer conformance suite: the issued SANs
// match the request, the chain verifies to the CA (with crypto/x509 and with
// `openssl verify`), usages and lifetime match, every key type is accepted,
// a cancelled context returns promptly and concurrent Sign calls are safe.
//
// A backend that cannot meet a check by design opts out of it explicitly
// with Unsupported (like cert-manager's UnsupportedFeatures); the opt-outs
// are visible in each backend's test.
//
// It is test support: only _test files import it. Run is safe to call from
// parallel tests; it needs the openssl program on PATH.
package issuertest
