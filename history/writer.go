package history

import (
	"bufio"
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

// WithBufferSize sets the write buffer size (default 256 KiB).
func WithBufferSize(n int) WriterOption { return func(w *Writer) { w.size = n } }

// Writer appends events to a history. Events are stamped as they are written, under the
// writer's lock, so T never decreases from one line to the next.
type Writer struct {
	start time.Time
	every time.Duration
	size  int

	mu     sync.Mutex
	bw     *bufio.Writer
	file   *os.File // set by Create: synced and closed by Close
	err    error
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
	pool   sync.Pool
}

// NewWriter writes a history to w, stamping events with their offset from start.
func NewWriter(w io.Writer, start time.Time, opts ...WriterOption) *Writer {
	hw := &Writer{start: start, every: DefaultFlushInterval, size: 256 << 10, done: make(chan struct{})}
	for _, o := range opts {
		o(hw)
	}
	hw.bw = bufio.NewWriterSize(w, max(hw.size, 4096))
	hw.pool.New = func() any { return new(encodeBuf) }
	if hw.every > 0 {
		hw.wg.Add(1)
		go hw.flushLoop()
	}
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
	defer w.mu.Unlock()
	switch {
	case w.closed:
		return ErrClosed
	case w.err != nil:
		return w.err
	}
	if stamp {
		// The encoder wrote T as 0; splice the stamp in under the lock so that lines are
		// in time order even when many goroutines write.
		var num [24]byte
		w.bw.WriteString(`{"t":`)
		w.bw.Write(strconv.AppendInt(num[:0], int64(time.Since(w.start)), 10))
		line = line[len(zero)-1:]
	}
	if _, err := w.bw.Write(line); err != nil {
		w.err = fmt.Errorf("write history: %w", err)
		return w.err
	}
	return nil
}

// Flush pushes buffered events to the underlying writer.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *Writer) flushLocked() error {
	if w.err != nil || w.closed {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("flush history: %w", err)
	}
	return w.err
}

func (w *Writer) flushLoop() {
	defer w.wg.Done()
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
			_ = w.Flush()
		}
	}
}

// Close flushes the buffer and, for a file made by Create, syncs and closes it.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.err
	}
	err := w.flushLocked()
	w.closed = true
	close(w.done)
	w.mu.Unlock()
	w.wg.Wait()
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
