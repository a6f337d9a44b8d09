package faults

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// DefaultProbePayload is what a probe writes to an upstream that does not speak first.
// A valid HTTP/1.0 request makes an HTTP server (etcd's included) answer and close, and
// an echo server echo. For an upstream that greets in a known Dialect the default payload
// is replaced by that protocol's cheapest request, so the timed answer is a reply to
// what the probe wrote, never the greeting.
var DefaultProbePayload = []byte("HEAD / HTTP/1.0\r\n\r\n")

// Dialects of upstreams, as a probe tells them apart by what they volunteer on connect.
const (
	// DialectNone: the upstream says nothing before the probe writes (HTTP/1, etcd, echo).
	DialectNone = "none"
	// DialectNATS: the upstream greets with a NATS INFO line. The probe sends PING and
	// times the first line that is not INFO (PONG, or -ERR when auth is required).
	DialectNATS = "nats"
	// DialectHTTP2: the upstream greets with an HTTP/2 SETTINGS frame (a gRPC server). The
	// probe sends the client preface, SETTINGS and PING and times the first frame that
	// answers them (an ACK, GOAWAY or RST_STREAM).
	DialectHTTP2 = "http2"
	// DialectOther: the upstream greets in a protocol the probe does not know. The probe
	// must take the whole greeting before writing and times the next bytes or the close.
	DialectOther = "other"
)

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
	// Greeting, when positive, is how long the probe waits after connecting for bytes the
	// upstream volunteers (a NATS INFO, a gRPC server's SETTINGS) before it writes; the
	// Probe's Dialect reports what they revealed. The greeting is set aside, so the timed
	// answer is the reply to the payload: an upstream latency delays that reply, never the
	// greeting. Zero writes at once.
	Greeting time.Duration
	// Dialect, known from an earlier probe of the same upstream, lets a probe with the
	// default payload write at once and still time only the reply: in DialectNATS and
	// DialectHTTP2 the reply is told apart from the greeting, so the probe need not wait
	// out a greeting that a downstream latency holds back.
	Dialect string
}

// Probe is one observation of a path.
type Probe struct {
	Outcome Outcome `json:"outcome"`
	// FirstByte is the time from the start of the write to the first byte of the reply:
	// the first byte read, or in a known Dialect the first frame or line answering it.
	FirstByte time.Duration `json:"first_byte"`
	// Greeting is the time from connecting to the first byte the upstream volunteered:
	// before the probe wrote, or with a known spec Dialect, ahead of the reply. A
	// downstream latency delays it, an upstream one does not. Zero when the upstream said
	// nothing or the probe could not tell a greeting apart.
	Greeting time.Duration `json:"greeting,omitempty"`
	// Dialect is the upstream's dialect: what the greeting revealed when the probe waited
	// for one, else the spec's.
	Dialect string `json:"dialect,omitempty"`
	// Elapsed is the time from the start of the write to the end of the probe.
	Elapsed time.Duration `json:"elapsed"`
	// Bytes and Reads count what came back after the write; many small reads are the
	// slicer's mark.
	Bytes int64 `json:"bytes"`
	Reads int   `json:"reads"`
	// Wrote reports that the probe connected and wrote its payload: it crossed the path
	// as a connection that carried bytes, which a count of the path's traffic sets apart.
	Wrote bool `json:"wrote,omitempty"`
	// EOF reports an orderly close by the far end.
	EOF bool   `json:"eof"`
	Err string `json:"err,omitempty"`
}

// Prober observes one path to a link's callee. addr is either the link's proxy or its
// upstream; a custom prober may send a real request along the caller's path instead.
type Prober func(ctx context.Context, link Link, addr string, spec ProbeSpec) Probe

// TCPProbe connects to addr, optionally sets a greeting aside (spec.Greeting), writes
// the payload and times the answer: the reply's first byte, or with ReadAll everything up
// to EOF. Errors become outcomes, never panics.
func TCPProbe(ctx context.Context, addr string, spec ProbeSpec) Probe {
	if spec.Timeout <= 0 {
		spec.Timeout = time.Second
	}
	if spec.Payload == nil {
		spec.Payload = DefaultProbePayload
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout+max(spec.Greeting, 0))
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

	p := Probe{Dialect: spec.Dialect}
	connected := time.Now()
	var greeting []byte
	if spec.Greeting > 0 {
		var failed bool
		if greeting, failed = readGreeting(ctx, conn, deadline, spec.Greeting, &p); failed {
			return p
		}
		p.Dialect = dialectOf(greeting)
	}
	var match func([]byte) bool
	defaultPayload := bytes.Equal(spec.Payload, DefaultProbePayload)
	switch {
	case p.Dialect == DialectNATS && defaultPayload:
		spec.Payload, match = []byte("PING\r\n"), natsReply(greeting)
	case p.Dialect == DialectHTTP2 && defaultPayload:
		spec.Payload, match = h2Probe, h2Reply(greeting)
	case p.Dialect != "" && p.Dialect != DialectNone && spec.Greeting > 0:
		// Unknown protocol: drain what else it volunteers, then any byte is the reply.
		drain(ctx, conn, deadline)
	}
	if ctx.Err() != nil {
		p.Outcome, p.Err = OutcomeSilent, "probe ended before writing: "+ctx.Err().Error()
		return p
	}
	setReadDeadline(ctx, conn, deadline)

	start := time.Now()
	p.Wrote = true
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
	replied := false
	buf := make([]byte, 32<<10)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			if match != nil && p.Greeting == 0 && spec.Greeting <= 0 {
				// Written at once: the first bytes are the greeting, followed by the reply.
				p.Greeting = time.Since(connected)
			}
			p.Reads++
			p.Bytes += int64(n)
			if !replied && (match == nil || match(buf[:n])) {
				replied, p.FirstByte = true, time.Since(start)
			}
			if replied && (!spec.ReadAll || match != nil || (spec.Max > 0 && p.Bytes >= spec.Max)) {
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
			if replied {
				p.Outcome = OutcomeAnswered
			}
		case replied && isTimeout(err):
			p.Outcome = OutcomeAnswered
		default:
			p.Outcome = classify(err, OutcomeFailed)
			p.Err = err.Error()
		}
		return p
	}
}

// readGreeting waits up to wait (or the probe's deadline) for bytes the upstream
// volunteers and returns them. Enough is read to tell the protocol apart (an HTTP/2 frame
// header is 9 bytes); the rest is left for the reply matcher, which skips it. failed
// reports that the probe already has its outcome: the upstream closed or reset, or the
// probe's own deadline passed.
func readGreeting(ctx context.Context, conn net.Conn, deadline time.Time, wait time.Duration, p *Probe) (greeting []byte, failed bool) {
	connected := time.Now()
	until := earliest(deadline, connected.Add(wait))
	buf := make([]byte, 4<<10)
	for len(greeting) < 9 {
		setReadDeadline(ctx, conn, until)
		n, err := conn.Read(buf)
		if n > 0 {
			if len(greeting) == 0 {
				p.Greeting = time.Since(connected)
				// The rest of a greeting follows its first bytes at once; do not wait long.
				until = earliest(deadline, time.Now().Add(50*time.Millisecond))
			}
			greeting = append(greeting, buf[:n]...)
		}
		switch {
		case err == nil:
			continue
		case isTimeout(err) && ctx.Err() == nil:
			// The wait for the greeting ended, not the probe.
			return greeting, false
		case isTimeout(err) && len(greeting) > 0:
			return greeting, false
		default:
			p.Elapsed = time.Since(connected)
			p.Outcome = classify(err, OutcomeFailed)
			if errors.Is(err, io.EOF) {
				p.EOF, p.Outcome = true, OutcomeClosed
			}
			p.Err = "before writing: " + err.Error()
			return greeting, true
		}
	}
	return greeting, false
}

// setReadDeadline moves the read deadline without undoing a cancellation: if ctx ended
// meanwhile, the deadline goes back to now, as context.AfterFunc set it.
func setReadDeadline(ctx context.Context, conn net.Conn, t time.Time) {
	_ = conn.SetReadDeadline(t)
	if ctx.Err() != nil {
		_ = conn.SetReadDeadline(time.Now())
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// dialectOf names the protocol a greeting belongs to.
func dialectOf(greeting []byte) string {
	switch {
	case len(greeting) == 0:
		return DialectNone
	case bytes.HasPrefix(greeting, []byte("INFO ")):
		return DialectNATS
	case len(greeting) >= 9 && greeting[3] == h2Settings && greeting[4]&h2Ack == 0 &&
		bytes.Equal(greeting[5:9], []byte{0, 0, 0, 0}) && h2Len(greeting)%6 == 0:
		return DialectHTTP2
	}
	return DialectOther
}

// drain reads and discards what an upstream volunteers until it pauses briefly.
func drain(ctx context.Context, conn net.Conn, deadline time.Time) {
	buf := make([]byte, 4<<10)
	for {
		setReadDeadline(ctx, conn, earliest(deadline, time.Now().Add(30*time.Millisecond)))
		if _, err := conn.Read(buf); err != nil {
			return
		}
	}
}

// natsReply recognises the first line that is not an INFO: the server's answer (PONG,
// or -ERR) to the probe's PING. It is fed the greeting first, so a greeting split across
// reads is skipped whole.
func natsReply(greeting []byte) func([]byte) bool {
	var pending []byte
	feed := func(b []byte) bool {
		pending = append(pending, b...)
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 {
				return false
			}
			line := bytes.TrimSpace(pending[:i])
			pending = pending[i+1:]
			if len(line) > 0 && !bytes.HasPrefix(line, []byte("INFO")) {
				return true
			}
		}
	}
	feed(greeting)
	return feed
}

const (
	h2Settings = 0x4
	h2Ping     = 0x6
	h2GoAway   = 0x7
	h2Reset    = 0x3
	h2Ack      = 0x1
)

// h2Probe is an HTTP/2 client preface, an empty SETTINGS frame and a PING: a gRPC server
// answers with SETTINGS and PING ACKs, and an HTTP/2 server that rejects it with GOAWAY.
var h2Probe = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
	"\x00\x00\x00\x04\x00\x00\x00\x00\x00" +
	"\x00\x00\x08\x06\x00\x00\x00\x00\x00faultlin")

func h2Len(b []byte) int { return int(b[0])<<16 | int(b[1])<<8 | int(b[2]) }

// h2Reply recognises the first frame that answers the probe: an ACK of its SETTINGS or
// PING, a GOAWAY or a RST_STREAM. Frames the server volunteers (its own SETTINGS,
// WINDOW_UPDATE) are skipped; it is fed the greeting first so frames stay aligned.
func h2Reply(greeting []byte) func([]byte) bool {
	var pending []byte
	feed := func(b []byte) bool {
		pending = append(pending, b...)
		for len(pending) >= 9 {
			typ, flags := pending[3], pending[4]
			if ((typ == h2Settings || typ == h2Ping) && flags&h2Ack != 0) || typ == h2GoAway || typ == h2Reset {
				return true
			}
			size := 9 + h2Len(pending)
			if len(pending) < size {
				return false
			}
			pending = pending[size:]
		}
		return false
	}
	feed(greeting)
	return feed
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
