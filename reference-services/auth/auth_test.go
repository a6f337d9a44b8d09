package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/auth"
)

const (
	iss = "faultline"
	aud = "reference-gateway"
)

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return s
}

func claims(mod func(c *jwt.RegisteredClaims)) jwt.RegisteredClaims {
	now := time.Now()
	c := jwt.RegisteredClaims{
		Issuer: iss, Audience: jwt.ClaimStrings{aud}, Subject: "alice",
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}
	if mod != nil {
		mod(&c)
	}
	return c
}

func TestVerifyRefusesBadTokens(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)
	good := sign(t, jwt.SigningMethodHS256, secret, claims(nil))

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"missing", "", auth.ErrMissing},
		{"malformed", "not.a.jwt", auth.ErrMalformed},
		{"garbage", "abc", auth.ErrMalformed},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute))
		})), auth.ErrExpired},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) {
			c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Minute))
		})), auth.ErrNotYetValid},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) {
			c.IssuedAt = jwt.NewNumericDate(time.Now().Add(time.Minute))
		})), auth.ErrNotYetValid},
		{"no expiry", sign(t, jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil })), auth.ErrMissingExpiresAt},
		{"wrong signature", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret!!"), claims(nil)), auth.ErrSignature},
		{"tampered payload", good[:len(good)-2] + "xx", auth.ErrSignature},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) { c.Issuer = "mallory" })), auth.ErrIssuer},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"other"} })), auth.ErrAudience},
		{"alg none", none, auth.ErrMethod},
		{"ES256 instead of HS256", sign(t, jwt.SigningMethodES256, ec, claims(nil)), auth.ErrMethod},
		{"HS512 instead of HS256", sign(t, jwt.SigningMethodHS512, secret, claims(nil)), auth.ErrMethod},
		{"no subject", sign(t, jwt.SigningMethodHS256, secret, claims(func(c *jwt.RegisteredClaims) { c.Subject = "" })), auth.ErrMissingSubject},
	}
	v := auth.NewVerifier(secret, iss, aud)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(tt.token)
			require.ErrorIs(t, err, tt.want)
			assert.Equal(t, tt.want.Error(), auth.Reason(err))
		})
	}
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	secret, err := auth.NewSecret()
	require.NoError(t, err)
	require.Len(t, secret, auth.SecretBytes)
	tok, err := auth.Issue(secret, iss, aud, "loadgen", time.Hour)
	require.NoError(t, err)
	c, err := auth.NewVerifier(secret, iss, aud).Verify(tok)
	require.NoError(t, err)
	assert.Equal(t, "loadgen", c.Subject)
	assert.WithinDuration(t, time.Now().Add(time.Hour), c.ExpiresAt.Time, 5*time.Second)

	_, err = auth.Issue(nil, iss, aud, "x", time.Hour)
	assert.Error(t, err)
	_, err = auth.Issue(secret, iss, aud, "x", 0)
	assert.Error(t, err)
}

func TestLoadOrCreateSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "jwt.secret")
	first, err := auth.LoadOrCreateSecret(path)
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	again, err := auth.LoadOrCreateSecret(path)
	require.NoError(t, err)
	assert.Equal(t, first, again, "a second load reads the same secret")

	require.NoError(t, os.WriteFile(path, []byte("zz\n"), 0o600))
	_, err = auth.LoadOrCreateSecret(path)
	assert.ErrorContains(t, err, "decode secret")
	require.NoError(t, os.WriteFile(path, []byte("abcd\n"), 0o600))
	_, err = auth.LoadOrCreateSecret(path)
	assert.ErrorContains(t, err, "too short")
}

// Processes starting together (two gateways, or a gateway and `faultline token`) all get the
// one secret that was created: nobody reads a file that exists but is not written yet.
func TestLoadOrCreateSecretConcurrently(t *testing.T) {
	dir := t.TempDir()
	for round := range 50 {
		path := filepath.Join(dir, strconv.Itoa(round), "jwt.secret")
		const n = 8
		got := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { got[i], errs[i] = auth.LoadOrCreateSecret(path) })
		}
		wg.Wait()
		for i := range n {
			require.NoError(t, errs[i], "round %d, caller %d", round, i)
			require.Equal(t, got[0], got[i], "round %d, caller %d", round, i)
		}
	}
}

// TestStillValidJudgesTimesAgain: claims accepted once are judged again at a later moment
// with Verify's rules, at the 2 s leeway's boundary.
func TestStillValidJudgesTimesAgain(t *testing.T) {
	v := auth.NewVerifier([]byte("k"), iss, aud)
	now := time.Now()
	for _, tc := range []struct {
		name string
		mod  func(c *jwt.RegisteredClaims)
		want error
	}{
		{"valid", nil, nil},
		{"expired within the leeway", func(c *jwt.RegisteredClaims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Second)) }, nil},
		{"expired beyond the leeway", func(c *jwt.RegisteredClaims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-3 * time.Second)) }, auth.ErrExpired},
		{"not valid yet", func(c *jwt.RegisteredClaims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Minute)) }, auth.ErrNotYetValid},
		{"wrong audience", func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"other"} }, auth.ErrAudience},
		{"no expiry", func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil }, auth.ErrMissingExpiresAt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := v.StillValid(auth.Claims{RegisteredClaims: claims(tc.mod)})
			if tc.want == nil {
				assert.NoError(t, got)
				return
			}
			assert.ErrorIs(t, got, tc.want)
		})
	}
}
