package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGuard(t *testing.T) {
	const token, csrf = "tok", "csrf"
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	srv := httptest.NewServer(guard(token, csrf, ok))
	defer srv.Close()
	tests := []struct {
		name   string
		method string
		path   string
		header map[string]string
		want   int
	}{
		{"no token", "GET", "/", nil, http.StatusUnauthorized},
		{"wrong token", "GET", "/?token=nope", nil, http.StatusUnauthorized},
		{"token in query", "GET", "/?token=tok", nil, http.StatusOK},
		{"token in cookie", "GET", "/api/state", map[string]string{"Cookie": TokenCookie + "=tok"}, http.StatusOK},
		{"token in header", "GET", "/api/state", map[string]string{TokenHeader: "tok"}, http.StatusOK},
		{"post without token", "POST", "/api/heal-all", map[string]string{CSRFHeader: "csrf"}, http.StatusUnauthorized},
		{"post without csrf proof", "POST", "/api/heal-all", map[string]string{TokenHeader: "tok"}, http.StatusForbidden},
		{"post with wrong csrf proof", "POST", "/api/heal-all", map[string]string{TokenHeader: "tok", CSRFHeader: "x"}, http.StatusForbidden},
		{"post cross-site", "POST", "/api/heal-all", map[string]string{"Cookie": TokenCookie + "=tok", CSRFHeader: "csrf", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"post from another origin", "POST", "/api/heal-all", map[string]string{"Cookie": TokenCookie + "=tok", CSRFHeader: "csrf", "Origin": "http://evil.example"}, http.StatusForbidden},
		{"post same origin with proof", "POST", "/api/heal-all", map[string]string{"Cookie": TokenCookie + "=tok", CSRFHeader: "csrf", "Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		{"put refused", "PUT", "/api/heal-all", map[string]string{TokenHeader: "tok", CSRFHeader: "csrf"}, http.StatusMethodNotAllowed},
		{"rebound host", "GET", "/?token=tok", map[string]string{"Host": "evil.example:80"}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader("{}"))
			require.NoError(t, err)
			for k, v := range tt.header {
				if k == "Host" {
					req.Host = v
					continue
				}
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tt.want, resp.StatusCode)
		})
	}
}

func TestTokenInQuerySetsStrictCookie(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "http://127.0.0.1:1/?token=tok", nil)
	guard("tok", "c", http.NotFoundHandler()).ServeHTTP(rec, req)
	cookies := rec.Result().Cookies()
	require.Len(t, cookies, 1)
	got := cookies[0]
	assert.Equal(t, TokenCookie, got.Name)
	assert.True(t, got.HttpOnly)
	assert.Equal(t, http.SameSiteStrictMode, got.SameSite)
}

func TestListenLoopback(t *testing.T) {
	tests := []struct {
		addr    string
		wantErr string
	}{
		{"127.0.0.1:0", ""},
		{"localhost:0", ""},
		{"[::1]:0", ""},
		{"0.0.0.0:0", "loopback only"},
		{":0", "loopback only"},
		{"192.0.2.1:0", "loopback only"},
		{"nonsense", "parse console address"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			ln, err := ListenLoopback(tt.addr)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			if err != nil && strings.Contains(tt.addr, "::1") {
				t.Skipf("no IPv6 loopback here: %v", err)
			}
			require.NoError(t, err)
			defer ln.Close()
			host := ln.Addr().String()
			assert.True(t, strings.HasPrefix(host, "127.0.0.1:") || strings.HasPrefix(host, "[::1]:"), "listening on %s", host)
		})
	}
}
