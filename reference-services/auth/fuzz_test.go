package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signedFixed signs fixed claims, so the token is byte-identical in every process: the fuzz
// coordinator and its workers each run this setup, and a token from time.Now() would differ
// between them.
func signedFixed(f *testing.F, secret []byte) string {
	claims := jwt.RegisteredClaims{
		Issuer:    "faultline",
		Subject:   "fuzz",
		Audience:  jwt.ClaimStrings{"faultline-gateway"},
		IssuedAt:  jwt.NewNumericDate(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		NotBefore: jwt.NewNumericDate(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		ExpiresAt: jwt.NewNumericDate(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		f.Fatal(err)
	}
	return s
}

// FuzzVerify feeds arbitrary bearer tokens to the verifier: whatever a client sends, the
// gateway must answer with a reason, never panic, and never accept a token whose header and
// claims are not exactly ones it signed.
func FuzzVerify(f *testing.F) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	good := signedFixed(f, secret)
	other := signedFixed(f, []byte("another secret, another system!!"))
	for _, s := range []string{good, other, "", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", strings.Repeat("A", 5000)} {
		f.Add(s)
	}
	signedPart := good[:strings.LastIndex(good, ".")]
	v := NewVerifier(secret, "faultline", "faultline-gateway")
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(token)
		if err != nil {
			if Reason(err) == "" {
				t.Fatalf("refusal without a reason: %v", err)
			}
			return
		}
		i := strings.LastIndex(token, ".")
		if i < 0 || token[:i] != signedPart {
			t.Fatalf("accepted a token whose header or claims were never signed: %q (claims %+v)", token, claims)
		}
	})
}
