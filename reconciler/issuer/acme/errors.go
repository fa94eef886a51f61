package acme

import (
	"errors"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/registration"

	"certops.dev/certops/reconciler/issuer"
)

// defaultRateLimitWait applies when a rate-limited response carries no
// Retry-After. One hour: Let's Encrypt's shortest rate-limit refill for
// failed validations (5 per hour per account and hostname).
const defaultRateLimitWait = time.Hour

// permanentProblems are ACME error types (RFC 8555 section 6.7 and the
// ACME extensions) that the same request will hit again until the spec or
// the issuer changes.
var permanentProblems = map[string]bool{
	legoacme.MalformedErrorType:               true,
	legoacme.RejectedIdentifierErrorType:      true,
	legoacme.UnsupportedIdentifierErrorType:   true,
	legoacme.BadCSRErrorType:                  true,
	legoacme.CaaErrorType:                     true,
	legoacme.InvalidProfileErrorType:          true,
	legoacme.ExternalAccountRequiredErrorType: true,
	legoacme.UserActionRequiredErrorType:      true,
	legoacme.InvalidContactErrorType:          true,
	legoacme.UnsupportedContactErrorType:      true,
	legoacme.BadPublicKeyErrorType:            true,
	legoacme.BadSignatureAlgorithmErrorType:   true,
	legoacme.BadRevocationReasonErrorType:     true,
	legoacme.AccountDoesNotExistErrorType:     true,
}

// classify gives err its retry class. Challenge failures (unauthorized,
// incorrectResponse, dns, connection, tls) are transient: DNS propagates,
// listeners come back, and the reconciler's backoff bounds the cost.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var rl *legoacme.RateLimitedError
	if errors.As(err, &rl) {
		wait := rl.RetryAfter
		if wait <= 0 {
			wait = defaultRateLimitWait
		}
		return issuer.RetryAfter(time.Now().Add(wait), err)
	}
	var pd *legoacme.ProblemDetails
	if errors.As(err, &pd) {
		if pd.Type == legoacme.RateLimitedErrorType {
			return issuer.RetryAfter(time.Now().Add(defaultRateLimitWait), err)
		}
		if permanentProblems[pd.Type] {
			return issuer.Permanent(err)
		}
		for _, sp := range pd.SubProblems {
			if permanentProblems[sp.Type] {
				return issuer.Permanent(err)
			}
		}
		return issuer.Transient(err)
	}
	// A DNS provider of certops' own (azuredns) classifies its errors,
	// keeping the Retry-After of a throttled DNS API: lego wraps them with
	// %w, so the class is still in the chain.
	var ie *issuer.Error
	if errors.As(err, &ie) {
		return err
	}
	return issuer.Transient(err)
}

func registrationOpts(c Config) registration.RegisterOptions {
	return registration.RegisterOptions{TermsOfServiceAgreed: c.TermsOfServiceAgreed}
}

func registrationEAB(c Config) registration.RegisterEABOptions {
	return registration.RegisterEABOptions{TermsOfServiceAgreed: c.TermsOfServiceAgreed, Kid: c.EAB.KeyID, HmacEncoded: c.EAB.HMACKey}
}
