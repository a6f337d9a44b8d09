// Package wait holds composable readiness strategies: a strategy polls one condition, and
// combinators add deadlines, run several at once, or fail fast when the process being
// waited for dies, so that a crashed component fails a start in milliseconds instead of
// after the whole timeout.
package wait

import (
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

// HTTPStrategy waits until GET URL answers with the wanted status.
type HTTPStrategy struct {
	url      string
	status   int
	timeout  time.Duration
	interval time.Duration
	client   *http.Client
}

var _ Strategy = (*HTTPStrategy)(nil)

// HTTP waits for GET url to answer status (for example a component's /readyz and 200).
func HTTP(url string, status int) *HTTPStrategy {
	return &HTTPStrategy{url: url, status: status, interval: DefaultInterval,
		client: &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}}
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
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
		if err != nil {
			return false, Permanent(fmt.Errorf("build request %s: %w", h.url, err))
		}
		resp, err := h.client.Do(req)
		if err != nil {
			return false, err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if resp.StatusCode != h.status {
			return false, fmt.Errorf("GET %s: status %d, want %d", h.url, resp.StatusCode, h.status)
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("wait for %s: %w", h.url, err)
	}
	return nil
}

// TCP waits until addr accepts a connection.
func TCP(addr string) Strategy {
	return Func(func(ctx context.Context) (bool, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return false, err
		}
		_ = c.Close()
		return true, nil
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
		return fmt.Errorf("wait for %s: process exited: %v", w.p.Name(), exitReason(w.p.ExitErr()))
	}
}

func exitReason(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
