package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

var (
	errMissingKind = errors.New("event has no kind")
	// ErrClosed is returned by Write after Close.
	ErrClosed = errors.New("history writer is closed")
)

type payloadError struct{ kind Kind }

func (e *payloadError) Error() string {
	return fmt.Sprintf("%s event has no %s payload", e.kind, e.kind)
}

// DefaultFlushInterval is how often a Writer pushes buffered events to the file, so that a
// harness killed without warning loses at most that much of the record.
const DefaultFlushInterval = time.Second

// WriterOption configures a Writer.
type WriterOption func(*Writer)

// WithFlushInterval sets how often buffered events are flushed; 0 flushes only when the
// buffer fills and on Close.
func WithFlushInterval(d time.Duration) WriterOption { return func(w *Writer) { w.every = d } }

// WithBufferSize sets how much a Writer buffers before its flusher writes to the file
// (default 256 KiB, at least 4 KiB).
func WithBufferSize(n int) WriterOption { return func(w *Writer) { w.size = n } }

// Writer appends events to a history. Events are stamped as they are written, under the
// writer's lock, so T never decreases from one line to the next.
//
// Write never waits for the file: events go to an in-memory buffer, and a flush hands the
// buffer to the file outside the lock while a second buffer takes new events. The harness
// writes every request's outcome from the load generator's result loop, so a Write that
// waited on a stalled disk would hold the load back and pass for a generator that cannot
// keep its rate. Only when the file has fallen behind by more than the pending bound does
// a Write flush itself, so memory stays bounded whatever the disk does.
type Writer struct {
	start   time.Time
	every   time.Duration
	size    int // a full buffer asks the flusher to write it
	pending int // a buffer this big is written by the writer that filled it

	mu     sync.Mutex
	cur    *bytes.Buffer // events not yet handed to the file
	err    error
	closed bool

	ioMu  sync.Mutex // serialises writes to dst; guards spare
	dst   io.Writer
	spare *bytes.Buffer
	file  *os.File // set by Create: synced and closed by Close

	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
	pool sync.Pool
}

// NewWriter writes a history to w, stamping events with their offset from start.
func NewWriter(w io.Writer, start time.Time, opts ...WriterOption) *Writer {
	hw := &Writer{start: start, every: DefaultFlushInterval, size: 256 << 10, dst: w,
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	for _, o := range opts {
		o(hw)
	}
	hw.size = max(hw.size, 4096)
	hw.pending = max(16*hw.size, 4<<20)
	hw.cur, hw.spare = bytes.NewBuffer(make([]byte, 0, hw.size)), bytes.NewBuffer(make([]byte, 0, hw.size))
	hw.pool.New = func() any { return new(encodeBuf) }
	hw.wg.Add(1)
	go hw.flushLoop()
	return hw
}

// Create creates a new history file at path; it refuses to overwrite an existing one,
// because a history is the only record of a run.
func Create(path string, start time.Time, opts ...WriterOption) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create history: %w", err)
	}
	w := NewWriter(f, start, opts...)
	w.file = f
	return w, nil
}

// Start returns the instant T is measured from.
func (w *Writer) Start() time.Time { return w.start }

type encodeBuf struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// Write appends ev. When ev.T is zero it is stamped with the time elapsed since the start;
// a non-zero T (a fixture, a replay) is kept. Write is safe for concurrent use; the first
// error writing the underlying writer is returned by every later Write and by Close.
func (w *Writer) Write(ev Event) error {
	if err := ev.check(); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	eb := w.pool.Get().(*encodeBuf)
	defer w.pool.Put(eb)
	eb.buf.Reset()
	if eb.enc == nil {
		eb.enc = json.NewEncoder(&eb.buf)
		eb.enc.SetEscapeHTML(false)
	}
	stamp := ev.T == 0
	if err := eb.enc.Encode(ev); err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	line := eb.buf.Bytes()
	const zero = `{"t":0,`
	w.mu.Lock()
	switch {
	case w.closed:
		w.mu.Unlock()
		return ErrClosed
	case w.err != nil:
		err := w.err
		w.mu.Unlock()
		return err
	}
	if stamp {
		// The encoder wrote T as 0; splice the stamp in under the lock so that lines are
		// in time order even when many goroutines write.
		var num [24]byte
		w.cur.WriteString(`{"t":`)
		w.cur.Write(strconv.AppendInt(num[:0], int64(time.Since(w.start)), 10))
		line = line[len(zero)-1:]
	}
	w.cur.Write(line)
	n := w.cur.Len()
	w.mu.Unlock()
	switch {
	case n >= w.pending:
		return w.flush(false)
	case n >= w.size:
		select {
		case w.kick <- struct{}{}:
		default: // the flusher is already asked
		}
	}
	return nil
}

// Flush pushes buffered events to the underlying writer.
func (w *Writer) Flush() error { return w.flush(false) }

// flush hands the current buffer to the file, outside the lock Write takes. closing lets
// Close's last flush through after the writer is marked closed.
func (w *Writer) flush(closing bool) error {
	w.ioMu.Lock()
	defer w.ioMu.Unlock()
	w.mu.Lock()
	if w.err != nil || (w.closed && !closing) || w.cur.Len() == 0 {
		err := w.err
		w.mu.Unlock()
		return err
	}
	out := w.cur
	w.cur, w.spare = w.spare, nil
	w.mu.Unlock()

	_, err := w.dst.Write(out.Bytes())
	out.Reset()
	w.spare = out
	if err == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = fmt.Errorf("write history: %w", err)
	}
	return w.err
}

// flushLoop writes the buffer every interval and whenever a Write finds it full.
func (w *Writer) flushLoop() {
	defer w.wg.Done()
	var tick <-chan time.Time
	if w.every > 0 {
		t := time.NewTicker(w.every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-w.done:
			return
		case <-tick:
		case <-w.kick:
		}
		_ = w.flush(false)
	}
}

// Close flushes the buffer and, for a file made by Create, syncs and closes it.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		err := w.err
		w.mu.Unlock()
		return err
	}
	w.closed = true
	close(w.done)
	w.mu.Unlock()
	w.wg.Wait()
	err := w.flush(true)
	if w.file != nil {
		if serr := w.file.Sync(); serr != nil && err == nil {
			err = fmt.Errorf("sync history: %w", serr)
		}
		if cerr := w.file.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close history: %w", cerr)
		}
	}
	return err
}
