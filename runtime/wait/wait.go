// Package wait is the one readiness-wait package of every runtime and system under test:
// a strategy polls one condition, and combinators add deadlines, run several at once, or
// fail fast when the process being waited for dies, so that a crashed component fails a
// start in milliseconds instead of after the whole timeout. The one-attempt checks
// (CheckHTTP, CheckTCP) serve callers that probe health once rather than wait for it.
package wait

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/runtime"
)

// DefaultInterval is the polling period: short, because startup speed is a product goal and
// a readiness probe on loopback costs microseconds.
const DefaultInterval = 20 * time.Millisecond

// Strategy blocks until its condition holds or ctx ends.
type Strategy interface {
	Wait(ctx context.Context) error
}

// Func adapts a polling function: check returns true when the condition holds, or an error
// that ends the wait at once (a permanent failure, not "not yet").
type Func func(ctx context.Context) (bool, error)

// Wait polls f every DefaultInterval.
func (f Func) Wait(ctx context.Context) error { return poll(ctx, DefaultInterval, f) }

// Every polls f every d instead: a probe that costs more than a loopback request (one
// through a container engine's published port) is polled less often.
func (f Func) Every(d time.Duration) Strategy {
	return every{f: f, d: cmp.Or(max(d, 0), DefaultInterval)}
}

type every struct {
	f Func
	d time.Duration
}

func (e every) Wait(ctx context.Context) error { return poll(ctx, e.d, e.f) }

func poll(ctx context.Context, every time.Duration, check func(ctx context.Context) (bool, error)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	var last error
	for {
		ok, err := check(ctx)
		if ok {
			return nil
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("wait: %w (last: %w)", ctx.Err(), last)
			}
			return fmt.Errorf("wait: %w", ctx.Err())
		case <-t.C:
		}
	}
}

type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }

// Permanent marks err as ending a Func's wait at once instead of being retried.
func Permanent(err error) error { return &permanentError{err: err} }

// CheckHTTP makes one GET of url with c (nil: a client of its own with a one-second
// timeout) and reports why it is not ready: an error unless the answer has status, or any
// 2xx status when status is 0.
func CheckHTTP(ctx context.Context, c *http.Client, url string, status int) error {
	if c == nil {
		c = newClient(time.Second)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Permanent(fmt.Errorf("build request %s: %w", url, err))
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case status == 0 && (resp.StatusCode < 200 || resp.StatusCode > 299):
		return fmt.Errorf("GET %s: status %d, want 2xx", url, resp.StatusCode)
	case status != 0 && resp.StatusCode != status:
		return fmt.Errorf("GET %s: status %d, want %d", url, resp.StatusCode, status)
	}
	return nil
}

// CheckTCP dials addr once and reports why it does not accept a connection.
func CheckTCP(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	_ = c.Close()
	return nil
}

// newClient is the probes' HTTP client: no keep-alive (a probe must see a restarted
// listener, not a pooled connection to the old one) and no proxy from the environment.
func newClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
}

// HTTPStrategy waits until GET URL answers with the wanted status.
type HTTPStrategy struct {
	url      string
	status   int
	timeout  time.Duration
	interval time.Duration
	client   *http.Client
}

var _ Strategy = (*HTTPStrategy)(nil)

// HTTP waits for GET url to answer status (for example a component's /readyz and 200);
// status 0 accepts any 2xx.
func HTTP(url string, status int) *HTTPStrategy {
	return &HTTPStrategy{url: url, status: status, interval: DefaultInterval, client: newClient(time.Second)}
}

// WithTimeout bounds the whole wait.
func (h *HTTPStrategy) WithTimeout(d time.Duration) *HTTPStrategy {
	c := *h
	c.timeout = d
	return &c
}

// WithInterval sets the polling period.
func (h *HTTPStrategy) WithInterval(d time.Duration) *HTTPStrategy {
	c := *h
	if d > 0 {
		c.interval = d
	}
	return &c
}

// Wait polls until the status matches.
func (h *HTTPStrategy) Wait(ctx context.Context) error {
	if h.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.timeout)
		defer cancel()
	}
	err := poll(ctx, h.interval, func(ctx context.Context) (bool, error) {
		err := CheckHTTP(ctx, h.client, h.url, h.status)
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("wait for %s: %w", h.url, err)
	}
	return nil
}

// TCP waits until addr accepts a connection.
func TCP(addr string) Strategy {
	return Func(func(ctx context.Context) (bool, error) {
		err := CheckTCP(ctx, addr)
		return err == nil, err
	})
}

type timeout struct {
	s Strategy
	d time.Duration
}

// WithTimeout bounds any strategy.
func WithTimeout(s Strategy, d time.Duration) Strategy { return timeout{s: s, d: d} }

func (t timeout) Wait(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.s.Wait(ctx)
}

type all []Strategy

// All waits for every strategy concurrently and fails as soon as one fails, cancelling the
// rest, so one broken component does not hide behind the slowest healthy one.
func All(s ...Strategy) Strategy { return all(s) }

func (a all) Wait(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, s := range a {
		wg.Go(func() {
			if err := s.Wait(ctx); err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel(err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

type whileRunning struct {
	p runtime.Process
	s Strategy
}

// WhileRunning waits for s but fails at once if p exits first, with its exit error.
func WhileRunning(p runtime.Process, s Strategy) Strategy { return whileRunning{p: p, s: s} }

func (w whileRunning) Wait(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- w.s.Wait(ctx) }()
	select {
	case err := <-errc:
		return err
	case <-w.p.Wait():
		cancel()
		<-errc
		return fmt.Errorf("wait for %s: process exited: %v%s", w.p.Name(), exitReason(w.p.ExitErr()), lastWords(w.p))
	}
}

// lastWords is the last line the process wrote to its log, so that a component that dies
// during start-up says why in the error itself (a CI log may be all a user ever sees).
func lastWords(p runtime.Process) string {
	s, ok := p.(runtime.Specced)
	if !ok || s.Spec().LogFile == "" {
		return ""
	}
	if line := runtime.LastLine(s.Spec().LogFile); line != "" {
		return "; last output: " + line
	}
	return ""
}

func exitReason(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
