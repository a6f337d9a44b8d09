package faults

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// DefaultProbePayload is what a probe writes after connecting. A valid HTTP/1.0 request
// makes an HTTP server answer and close, an echo server echo, and a gRPC or other binary
// server reject the preface and close: every kind of upstream says something back.
var DefaultProbePayload = []byte("HEAD / HTTP/1.0\r\n\r\n")

// Outcome is how a probe ended.
type Outcome string

// Probe outcomes. Silent is the signature of a black hole: connected, but nothing ever
// comes back, not even a close.
const (
	OutcomeAnswered Outcome = "answered"
	OutcomeClosed   Outcome = "closed"
	OutcomeReset    Outcome = "reset"
	OutcomeRefused  Outcome = "refused"
	OutcomeSilent   Outcome = "silent"
	OutcomeFailed   Outcome = "failed"
)

// ProbeSpec says what a probe sends and how long it listens.
type ProbeSpec struct {
	// Payload is written right after connecting; nil means DefaultProbePayload.
	Payload []byte
	// CloseWrite half-closes the connection after the payload, so an echo upstream ends
	// its answer and a slow close becomes visible.
	CloseWrite bool
	// ReadAll keeps reading until EOF, Max bytes or the timeout instead of stopping at the
	// first byte; transfer-shaped faults (bandwidth, slicer, limit_data) need it.
	ReadAll bool
	// Max stops a ReadAll probe after this many bytes; 0 means no limit.
	Max int64
	// Timeout bounds the whole probe; 0 means the Links' probe timeout.
	Timeout time.Duration
}

// Probe is one observation of a path.
type Probe struct {
	Outcome Outcome `json:"outcome"`
	// FirstByte is the time from the start of the write to the first byte read.
	FirstByte time.Duration `json:"first_byte"`
	// Elapsed is the time from the start of the write to the end of the probe.
	Elapsed time.Duration `json:"elapsed"`
	// Bytes and Reads count what came back; many small reads are the slicer's mark.
	Bytes int64 `json:"bytes"`
	Reads int   `json:"reads"`
	// EOF reports an orderly close by the far end.
	EOF bool   `json:"eof"`
	Err string `json:"err,omitempty"`
}

// Prober observes one path to a link's callee. addr is either the link's proxy or its
// upstream; a custom prober may send a real request along the caller's path instead.
type Prober func(ctx context.Context, link Link, addr string, spec ProbeSpec) Probe

// TCPProbe connects to addr, writes spec.Payload and times the answer: the first byte,
// or with ReadAll everything up to EOF. Errors become outcomes, never panics.
func TCPProbe(ctx context.Context, addr string, spec ProbeSpec) Probe {
	if spec.Timeout <= 0 {
		spec.Timeout = time.Second
	}
	if spec.Payload == nil {
		spec.Payload = DefaultProbePayload
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Probe{Outcome: classify(err, OutcomeFailed), Err: err.Error()}
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	start := time.Now()
	// Write concurrently with reading: a large payload through a slow or limited link
	// would otherwise deadlock against an echo server that cannot write back.
	go func() {
		if _, err := conn.Write(spec.Payload); err != nil {
			return
		}
		if spec.CloseWrite {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
		}
	}()
	var p Probe
	buf := make([]byte, 32<<10)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			if p.Reads == 0 {
				p.FirstByte = time.Since(start)
			}
			p.Reads++
			p.Bytes += int64(n)
			if !spec.ReadAll || (spec.Max > 0 && p.Bytes >= spec.Max) {
				p.Outcome, p.Elapsed = OutcomeAnswered, time.Since(start)
				return p
			}
		}
		if err == nil {
			continue
		}
		p.Elapsed = time.Since(start)
		switch {
		case errors.Is(err, io.EOF):
			p.EOF = true
			p.Outcome = OutcomeClosed
			if p.Bytes > 0 {
				p.Outcome = OutcomeAnswered
			}
		case p.Bytes > 0 && isTimeout(err):
			p.Outcome = OutcomeAnswered
		default:
			p.Outcome = classify(err, OutcomeFailed)
			p.Err = err.Error()
		}
		return p
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func classify(err error, fallback Outcome) Outcome {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return OutcomeRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return OutcomeReset
	case isTimeout(err):
		return OutcomeSilent
	}
	return fallback
}
