package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/auth"
	"github.com/faultline-dev/faultline/reference-services/design"
	"github.com/faultline-dev/faultline/reference-services/gateway"
)

// TestSecurityTable is the gateway's security contract in one place: every hostile or
// broken request, the status it gets, and that the answer is a JSON error with a request
// id and nothing internal in it.
func TestSecurityTable(t *testing.T) {
	signed := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		require.NoError(t, err)
		return s
	}
	now := time.Now()
	valid := jwt.MapClaims{"iss": issuer, "aud": audience, "sub": "mallory", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range valid {
			c[kk] = vv
		}
		c[k] = v
		return c
	}
	other, err := auth.Issue([]byte("another-secret-another-secret-ab"), issuer, audience, "mallory", time.Hour)
	require.NoError(t, err)
	none := signed(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid)

	type row struct {
		name   string
		method string
		path   string
		body   string
		auth   string // full Authorization header; "" sends none
		want   int
	}
	bearer := func(s string) string { return "Bearer " + s }
	rows := []row{
		{"no token", "GET", "/products", "", "", http.StatusUnauthorized},
		{"not a bearer scheme", "GET", "/products", "", "Basic YWxpY2U6cHc=", http.StatusUnauthorized},
		{"malformed token", "GET", "/products", "", bearer("not.a.jwt"), http.StatusUnauthorized},
		{"alg none", "GET", "/products", "", bearer(none), http.StatusUnauthorized},
		{"HS512 instead of HS256", "GET", "/products", "", bearer(signed(jwt.SigningMethodHS512, secret, valid)), http.StatusUnauthorized},
		{"signed with another secret", "GET", "/products", "", bearer(other), http.StatusUnauthorized},
		{"expired", "GET", "/products", "", bearer(signed(jwt.SigningMethodHS256, secret, with("exp", now.Add(-time.Minute).Unix()))), http.StatusUnauthorized},
		{"not yet valid", "GET", "/products", "", bearer(signed(jwt.SigningMethodHS256, secret, with("nbf", now.Add(time.Hour).Unix()))), http.StatusUnauthorized},
		{"wrong issuer", "GET", "/products", "", bearer(signed(jwt.SigningMethodHS256, secret, with("iss", "evil"))), http.StatusUnauthorized},
		{"wrong audience", "GET", "/products", "", bearer(signed(jwt.SigningMethodHS256, secret, with("aud", "other-api"))), http.StatusUnauthorized},
		{"oversized body", "POST", "/orders", `{"merchant_id":"` + strings.Repeat("m", 4096) + `"}`, "", http.StatusRequestEntityTooLarge},
		{"unknown route", "GET", "/admin/secrets", "", "", http.StatusNotFound},
		// Anything not routed is a plain 404, so probing with other methods does not reveal
		// which paths exist.
		{"wrong method on a known route", "DELETE", "/orders/o-1", "", "", http.StatusNotFound},
		{"placement without an idempotency key", "POST", "/orders", `{"merchant_id":"m-01","product_id":"p-001","quantity":1}`, "", http.StatusBadRequest},
		{"internal failure does not leak", "GET", "/products/p-001", "", "", http.StatusBadGateway},
	}
	f := newFixture(t, gateway.WithLimits(design.GatewayLimits{MaxBodyBytes: 1024, ClientRPS: 0.001, ClientBurst: 1000}))
	f.products.EXPECT().GetProduct(mock.Anything, mock.Anything).
		Return(nil, status.Error(codes.Internal, "sqlite: disk I/O error at /var/lib/faultline/product.db")).Maybe()
	alice := bearer(token(t, "alice"))
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
			switch {
			case r.auth != "":
				req.Header.Set("Authorization", r.auth)
			case r.want != http.StatusUnauthorized:
				req.Header.Set("Authorization", alice)
			}
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, req)
			assert.Equal(t, r.want, rec.Code, rec.Body.String())
			body := rec.Body.String()
			for _, leak := range []string{"sqlite", "/var/lib", "goroutine", "panic", "rpc error"} {
				assert.NotContains(t, body, leak, "internal detail leaked")
			}
			if r.want >= 400 {
				v := decode(t, rec)
				assert.NotEmpty(t, v["error"], "a JSON error a client can show")
				assert.NotEmpty(t, v["request_id"], "a request id to find the log line")
			}
		})
	}

	t.Run("flood from one client", func(t *testing.T) {
		f := newFixture(t, gateway.WithLimits(design.GatewayLimits{ClientRPS: 0.001, ClientBurst: 5}))
		f.products.EXPECT().ListProducts(mock.Anything, mock.Anything).Return(&refv1.ListProductsResponse{}, nil).Times(6)
		var got []int
		for range 20 {
			got = append(got, f.do(t, http.MethodGet, "/products", "", nil).Code)
		}
		want := []int{200, 200, 200, 200, 200}
		for range 15 {
			want = append(want, http.StatusTooManyRequests)
		}
		assert.Equal(t, want, got, "the burst is served, the rest is refused, nothing queues")
		rec := f.do(t, http.MethodGet, "/products", "", nil)
		assert.NotEmpty(t, rec.Header().Get("Retry-After"))
		other := f.do(t, http.MethodGet, "/products", "", map[string]string{"Authorization": "Bearer " + token(t, "bob")})
		assert.Equal(t, http.StatusOK, other.Code, "one client's flood does not lock out another")
	})
}
