package auth

import (
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary bearer tokens to the verifier: whatever a client sends, the
// gateway must answer with a reason, never panic, and never accept a token it did not sign.
func FuzzVerify(f *testing.F) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	good, err := Issue(secret, "faultline", "faultline-gateway", "fuzz", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	other, err := Issue([]byte("another secret, another system!!"), "faultline", "faultline-gateway", "fuzz", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{good, other, "", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", strings.Repeat("A", 5000)} {
		f.Add(s)
	}
	v := NewVerifier(secret, "faultline", "faultline-gateway")
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(token)
		if err != nil {
			if Reason(err) == "" {
				t.Fatalf("refusal without a reason: %v", err)
			}
			return
		}
		if token != good {
			t.Fatalf("accepted a token the gateway did not issue: %q (claims %+v)", token, claims)
		}
	})
}
