// Package node is the scaffolding every reference-system process shares: the admin HTTP
// server (/healthz, /readyz, /metrics), named readiness conditions, a private Prometheus
// registry and a structured logger. A Node works the same in a child process and inside a
// test, because nothing here touches global state.
package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/faultline-dev/faultline/reference-services/config"
)

// Node is one running component's shared plumbing.
type Node struct {
	Config   config.Component
	Log      *slog.Logger
	Registry *prometheus.Registry

	mu      sync.Mutex
	pending map[string]string // readiness condition -> why it is not met yet
	changed chan struct{}     // closed (and replaced) whenever a condition is met
	admin   *http.Server
	mux     *http.ServeMux
	ln      net.Listener
}

// New builds a Node and registers the process and Go collectors and the
// faultline_component_info gauge.
func New(cfg config.Component, log *slog.Logger) *Node {
	if log == nil {
		log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	log = log.With("component", cfg.Name)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "faultline_component_info",
		Help:        "Constant 1, labelled with the component's identity.",
		ConstLabels: prometheus.Labels{"kind": cfg.Kind, "name": cfg.Name, "service": cfg.Service},
	})
	info.Set(1)
	reg.MustRegister(info)
	n := &Node{Config: cfg, Log: log, Registry: reg, pending: map[string]string{}, changed: make(chan struct{}), mux: http.NewServeMux()}
	n.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "name": cfg.Name})
	})
	n.mux.HandleFunc("GET /readyz", n.serveReady)
	n.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return n
}

// Handle adds an admin endpoint (for example a state dump). Call it before StartAdmin.
func (n *Node) Handle(pattern string, h http.Handler) { n.mux.Handle(pattern, h) }

// Pending declares a readiness condition that is not met yet; /readyz answers 503 until
// every declared condition has been marked Ready.
func (n *Node) Pending(cond, why string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pending[cond] = why
}

// Ready marks a readiness condition as met.
func (n *Node) Ready(cond string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.pending, cond)
	close(n.changed)
	n.changed = make(chan struct{})
}

// IsReady reports whether every readiness condition is met.
func (n *Node) IsReady() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.pending) == 0
}

// maxReadyWait bounds ?wait= on /readyz.
const maxReadyWait = 10 * time.Second

// serveReady answers 200 when every condition is met and 503 with what is pending
// otherwise. With ?wait=DURATION (at most maxReadyWait) a 503 is held back until the
// component becomes ready or the duration passes: whoever starts the system learns of
// readiness the moment it happens instead of at its next poll.
func (n *Node) serveReady(w http.ResponseWriter, r *http.Request) {
	var deadline <-chan time.Time
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "wait: want a duration such as 500ms"})
			return
		}
		t := time.NewTimer(min(d, maxReadyWait))
		defer t.Stop()
		deadline = t.C
	}
	for {
		n.mu.Lock()
		var waiting []string
		for k, v := range n.pending {
			waiting = append(waiting, k+": "+v)
		}
		changed := n.changed
		n.mu.Unlock()
		if len(waiting) == 0 {
			writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "name": n.Config.Name})
			return
		}
		if deadline != nil {
			select {
			case <-changed:
				continue
			case <-deadline:
			case <-r.Context().Done():
			}
		}
		sort.Strings(waiting)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "waiting", "name": n.Config.Name, "waiting": waiting})
		return
	}
}

// StartAdmin listens on Config.Admin and serves the admin endpoints until ctx ends.
func (n *Node) StartAdmin(ctx context.Context) error {
	ln, err := Listen(n.Config.Admin)
	if err != nil {
		return fmt.Errorf("listen admin: %w", err)
	}
	n.ln = ln
	n.admin = &http.Server{Handler: n.mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := n.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.Log.Error("serve admin", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() { _ = n.admin.Close() })
	return nil
}

// AdminAddr is the address the admin server listens on (useful with port 0 in tests).
func (n *Node) AdminAddr() string {
	if n.ln == nil {
		return ""
	}
	return n.ln.Addr().String()
}

// Listen opens a TCP listener and refuses any address that is not loopback, so that a
// reference system started on a laptop or a CI runner is never reachable from outside.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("parse address %q: %w", addr, err)
	}
	if !AllowedHost(host) {
		return nil, fmt.Errorf("listen %s: refusing a non-loopback address (set FAULTLINE_BIND_ANY=1 inside a container network)", addr)
	}
	return net.Listen("tcp", addr)
}

// AllowedHost reports whether a listener may bind host. Inside a container the harness sets
// FAULTLINE_BIND_ANY=1 because the container's own network is the boundary.
func AllowedHost(host string) bool {
	if os.Getenv("FAULTLINE_BIND_ANY") == "1" {
		return true
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
