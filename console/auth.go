package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// Names of what carries the access token and the anti-CSRF proof.
const (
	// TokenParam is the query parameter of the printed URL; the first page load with it
	// sets TokenCookie, so the token leaves the address bar's history after one use.
	TokenParam = "token"
	// TokenCookie is HttpOnly and SameSite=Strict: no other site's page can send it.
	TokenCookie = "faultline_console"
	// TokenHeader carries the token for a client that is not a browser.
	TokenHeader = "X-Faultline-Token"
	// CSRFHeader carries the session's anti-CSRF token on every POST. A cross-site form
	// cannot set a header, and a cross-site script cannot read the page that holds it.
	CSRFHeader = "X-Faultline-CSRF"
)

// NewToken returns 128 random bits in hex.
func NewToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("draw token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// ListenLoopback listens on addr, which must name a loopback address (127.0.0.1, ::1 or
// localhost): the console steers faults on a live system and must never be reachable
// from another machine.
func ListenLoopback(addr string) (net.Listener, error) {
	if err := CheckAddr(addr); err != nil {
		return nil, err
	}
	if host, _, _ := net.SplitHostPort(addr); host == "localhost" {
		addr = net.JoinHostPort("127.0.0.1", addr[strings.LastIndexByte(addr, ':')+1:])
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// CheckAddr refuses an address that is not loopback, before anything is started.
func CheckAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("parse console address %q: %w", addr, err)
	}
	if !loopbackHost(host) {
		return fmt.Errorf("listen on %s: the console serves on loopback only (use 127.0.0.1:PORT)", addr)
	}
	return nil
}

func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// guard refuses every request without the access token (401) and every request that
// changes state without the anti-CSRF proof (403): a POST carrying csrf in CSRFHeader,
// from this origin by its Origin and Sec-Fetch-Site headers when the browser sends them.
// A Host that is not loopback is refused too (403), which defeats DNS rebinding.
func guard(token, csrf string, next http.Handler) http.Handler {
	origin := http.NewCrossOriginProtection()
	same := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if host, _, err := net.SplitHostPort(r.Host); err != nil || !loopbackHost(host) {
			http.Error(w, "forbidden: the console answers on loopback only", http.StatusForbidden)
			return
		}
		authed := false
		if c, err := r.Cookie(TokenCookie); err == nil && same(c.Value, token) {
			authed = true
		}
		if h := r.Header.Get(TokenHeader); h != "" && same(h, token) {
			authed = true
		}
		if q := r.URL.Query().Get(TokenParam); q != "" && same(q, token) {
			authed = true
			http.SetCookie(w, &http.Cookie{
				Name: TokenCookie, Value: token, Path: "/",
				HttpOnly: true, SameSite: http.SameSiteStrictMode,
			})
		}
		if !authed {
			http.Error(w, "unauthorized: open the URL the console printed (it carries the token)", http.StatusUnauthorized)
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodPost:
			if err := origin.Check(r); err != nil {
				http.Error(w, "forbidden: cross-origin request", http.StatusForbidden)
				return
			}
			if !same(r.Header.Get(CSRFHeader), csrf) {
				http.Error(w, "forbidden: missing or wrong "+CSRFHeader, http.StatusForbidden)
				return
			}
		default:
			http.Error(w, "method not allowed: state changes are POST", http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}
