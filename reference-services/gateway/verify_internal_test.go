package gateway

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/auth"
)

// TestVerifyReusesTheBodysVerification: a token verified when its request's body began is
// not verified again — a result stored for it is what authenticate sees, its times judged
// anew — while a different token in the header is verified in full.
func TestVerifyReusesTheBodysVerification(t *testing.T) {
	secret := []byte("test-secret")
	h := &handler{deps: Deps{Verifier: auth.NewVerifier(secret, "iss", "aud")}}
	good, err := auth.Issue(secret, "iss", "aud", "alice", time.Hour)
	require.NoError(t, err)
	now := time.Now()
	expired := auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "iss", Audience: jwt.ClaimStrings{"aud"}, Subject: "alice",
		IssuedAt: jwt.NewNumericDate(now.Add(-time.Hour)), ExpiresAt: jwt.NewNumericDate(now.Add(-time.Minute))}}
	stored := func(tok string, c auth.Claims, err error) context.Context {
		return context.WithValue(context.Background(), keyVerified, verification{token: tok, claims: c, err: err})
	}
	for _, tc := range []struct {
		name        string
		ctx         context.Context
		header      string
		wantSubject string
		wantErr     error
	}{
		{"verified in full without a stored result", context.Background(), good, "alice", nil},
		// The stored claims name bob though the token names alice: only a reused result
		// can answer bob, so this proves the signature was not checked again.
		{"stored result reused", stored(good, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "iss", Audience: jwt.ClaimStrings{"aud"}, Subject: "bob",
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}, nil), good, "bob", nil},
		{"stored claims expired since", stored(good, expired, nil), good, "", auth.ErrExpired},
		{"stored refusal kept", stored(good, auth.Claims{}, auth.ErrSignature), good, "", auth.ErrSignature},
		{"another token verified in full", stored("other", auth.Claims{}, auth.ErrSignature), good, "alice", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequestWithContext(tc.ctx, "POST", "/orders", nil)
			r.Header.Set("Authorization", "Bearer "+tc.header)
			got, err := h.verify(r)
			if tc.wantErr != nil {
				assert.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantSubject, got.Subject)
		})
	}
}
