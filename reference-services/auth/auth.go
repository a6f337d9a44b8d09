// Package auth issues and verifies the bearer tokens the gateway demands. Tokens are JWTs
// signed with HS256 and a shared secret; the verifier accepts nothing else, so the classic
// confusions (alg "none", an RS/ES token verified with the HMAC secret as a public key) are
// refused by construction.
package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// SecretBytes is the size of a generated HS256 secret (as long as the hash, per RFC 7518).
const SecretBytes = 32

// Claims are the registered claims the reference system uses; Subject names the client,
// which the gateway rate-limits per subject.
type Claims struct {
	jwt.RegisteredClaims
}

// NewSecret returns a fresh random HS256 secret.
func NewSecret() ([]byte, error) {
	b := make([]byte, SecretBytes)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate secret: %w", err)
	}
	return b, nil
}

// LoadOrCreateSecret reads the hex secret at path, creating it (mode 0600) when missing, so
// that a system and the `faultline token` command agree on one secret per run directory.
func LoadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil {
			return nil, fmt.Errorf("decode secret %s: %w", path, derr)
		}
		if len(s) < 16 {
			return nil, fmt.Errorf("read secret %s: %d bytes is too short (want >= 16)", path, len(s))
		}
		return s, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	s, err := NewSecret()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create secret directory: %w", err)
	}
	// Write a private temporary file, then link it into place: the link appears complete or
	// not at all, and fails if another process got there first, so a concurrent caller never
	// reads a secret file that is created but not written yet.
	f, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
	if err != nil {
		return nil, fmt.Errorf("create secret: %w", err)
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }()
	_, werr := f.WriteString(hex.EncodeToString(s) + "\n")
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return nil, fmt.Errorf("write secret: %w", err)
	}
	if err := os.Link(tmp, path); errors.Is(err, os.ErrExist) {
		// Another process created it between our read and our link: use theirs.
		return LoadOrCreateSecret(path)
	} else if err != nil {
		return nil, fmt.Errorf("create secret: %w", err)
	}
	return s, nil
}

// Issue signs a token for subject valid from now for ttl.
func Issue(secret []byte, issuer, audience, subject string, ttl time.Duration) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("issue token: the secret is empty")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("issue token: ttl must be > 0, got %s", ttl)
	}
	now := time.Now()
	c := Claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    issuer,
		Subject:   subject,
		Audience:  jwt.ClaimStrings{audience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// Verifier checks tokens against one secret, issuer and audience.
type Verifier struct {
	secret    []byte
	parser    *jwt.Parser
	validator *jwt.Validator // the parser's claim rules, for StillValid
}

// NewVerifier returns a Verifier; leeway for clock skew is a few seconds, enough for one host.
func NewVerifier(secret []byte, issuer, audience string) *Verifier {
	rules := []jwt.ParserOption{
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(2 * time.Second),
	}
	return &Verifier{
		secret:    secret,
		parser:    jwt.NewParser(append(rules, jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}))...),
		validator: jwt.NewValidator(rules...),
	}
}

// StillValid judges the claims of a token Verify accepted earlier again, at this moment:
// expiry, not-before and issued-at (with Verify's leeway), issuer and audience, without
// the signature, which cannot have changed. A server that verified a token once, when a
// request's body started to arrive, so judges its expiry when it handles the request. The
// error is one of the Err* reasons.
func (v *Verifier) StillValid(c Claims) error {
	if err := v.validator.Validate(c); err != nil {
		return classify(err)
	}
	return nil
}

// Reasons a token is refused; the gateway sends the message, never the library's text.
var (
	ErrMissing          = errors.New("missing bearer token")
	ErrMalformed        = errors.New("malformed token")
	ErrExpired          = errors.New("token expired")
	ErrNotYetValid      = errors.New("token not valid yet")
	ErrSignature        = errors.New("invalid token signature")
	ErrIssuer           = errors.New("wrong token issuer")
	ErrAudience         = errors.New("wrong token audience")
	ErrMethod           = errors.New("token signing method not allowed")
	ErrMissingSubject   = errors.New("token has no subject")
	ErrMissingExpiresAt = errors.New("token has no expiry")
)

// Verify checks signature, method, exp, nbf, iat, iss and aud, and returns the claims. The
// error is one of the Err* reasons (wrapping the library's error for logs).
func (v *Verifier) Verify(token string) (Claims, error) {
	if token == "" {
		return Claims{}, ErrMissing
	}
	var c Claims
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if _, ok := t.Method.(*jwt.SigningMethodHMAC); !ok {
			return nil, ErrMethod
		}
		return v.secret, nil
	})
	if err != nil {
		return Claims{}, classify(err)
	}
	if c.Subject == "" {
		return Claims{}, ErrMissingSubject
	}
	return c, nil
}

func classify(err error) error {
	wrap := func(reason error) error { return fmt.Errorf("%w: %w", reason, err) }
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return wrap(ErrMalformed)
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, ErrMethod),
		errors.Is(err, jwt.ErrTokenSignatureInvalid) && strings.Contains(err.Error(), "signing method"):
		return wrap(ErrMethod)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return wrap(ErrSignature)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && strings.Contains(err.Error(), "exp"):
		return wrap(ErrMissingExpiresAt)
	case errors.Is(err, jwt.ErrTokenExpired):
		return wrap(ErrExpired)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return wrap(ErrNotYetValid)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return wrap(ErrIssuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return wrap(ErrAudience)
	default:
		return wrap(ErrMalformed)
	}
}

// Reason is the short, safe message for a Verify error, for the gateway's 401 body.
func Reason(err error) string {
	for _, r := range []error{ErrMissing, ErrMalformed, ErrExpired, ErrNotYetValid, ErrSignature, ErrIssuer, ErrAudience, ErrMethod, ErrMissingSubject, ErrMissingExpiresAt} {
		if errors.Is(err, r) {
			return r.Error()
		}
	}
	return "invalid token"
}
