package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
)

// MaxLine bounds one line of a history, so that a corrupted file cannot make a reader
// allocate without limit.
const MaxLine = 16 << 20

// ErrTruncated marks a last line cut short, as a harness killed mid-write leaves it.
var ErrTruncated = errors.New("truncated last line")

// LineError is a line the reader could not decode. Reading may continue past it.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("read history line %d: %v", e.Line, e.Err) }

// Unwrap returns the cause.
func (e *LineError) Unwrap() error { return e.Err }

// Reader streams a history one event at a time; memory use is bounded by the longest line.
type Reader struct {
	br   *bufio.Reader
	c    io.Closer
	line int
	long []byte
}

// NewReader reads a history from r.
func NewReader(r io.Reader) *Reader { return &Reader{br: bufio.NewReaderSize(r, 256<<10)} }

// Open opens a history file for reading.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open history: %w", err)
	}
	r := NewReader(f)
	r.c = f
	return r, nil
}

// OpenAt opens a history file for reading from byte offset on: a caller judging the later
// part of a long history (a console session's scenario) reads only that part. An offset
// inside a line starts at the next whole line, so a line cut by the offset (a size taken
// while the writer was flushing) is never read as a truncated event.
func OpenAt(path string, offset int64) (*Reader, error) {
	if offset <= 0 {
		return Open(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open history: %w", err)
	}
	if _, err := f.Seek(offset-1, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("open history at %d: %w", offset, err)
	}
	r := NewReader(f)
	r.c = f
	// The byte before offset tells whether offset starts a line.
	if b, err := r.br.ReadByte(); err == nil && b != '\n' {
		if _, err := r.br.ReadSlice('\n'); err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return r, nil // no line starts after offset: Next says io.EOF
		}
		for errors.Is(err, bufio.ErrBufferFull) { // a line longer than the buffer
			_, err = r.br.ReadSlice('\n')
		}
	}
	return r, nil
}

// Line returns the number of the line Next read last (1-based).
func (r *Reader) Line() int { return r.line }

// Next returns the next event, io.EOF after the last one, or a *LineError for a line that
// does not decode (wrapping ErrTruncated when it is the last line and has no newline: the
// events before it are intact). After a LineError, Next goes on with the following line.
func (r *Reader) Next() (Event, error) {
	for {
		line, complete, err := r.readLine()
		if err != nil {
			return Event{}, err
		}
		r.line++
		if len(bytes.TrimSpace(line)) == 0 {
			if !complete {
				return Event{}, io.EOF
			}
			continue
		}
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			if !complete {
				err = fmt.Errorf("%w: %w", ErrTruncated, err)
			} else {
				err = fmt.Errorf("decode event: %w", err)
			}
			return Event{}, &LineError{Line: r.line, Err: err}
		}
		if err := ev.check(); err != nil {
			return Event{}, &LineError{Line: r.line, Err: err}
		}
		return ev, nil
	}
}

// readLine returns the next line without its newline; complete is false for a last line
// that has none.
func (r *Reader) readLine() (line []byte, complete bool, err error) {
	r.long = r.long[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		switch {
		case err == nil:
			if len(r.long) == 0 {
				return chunk[:len(chunk)-1], true, nil
			}
			r.long = append(r.long, chunk[:len(chunk)-1]...)
			return r.long, true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			if len(r.long)+len(chunk) > MaxLine {
				r.line++
				r.skipLine()
				return nil, false, &LineError{Line: r.line, Err: fmt.Errorf("line longer than %d bytes", MaxLine)}
			}
			r.long = append(r.long, chunk...)
		case errors.Is(err, io.EOF):
			r.long = append(r.long, chunk...)
			if len(r.long) == 0 {
				return nil, false, io.EOF
			}
			return r.long, false, nil
		default:
			return nil, false, fmt.Errorf("read history: %w", err)
		}
	}
}

func (r *Reader) skipLine() {
	for {
		_, err := r.br.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// Events iterates over the remaining events. It stops after io.EOF, or after yielding an
// error that is not a *LineError; line errors are yielded and reading goes on.
func (r *Reader) Events() iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for {
			ev, err := r.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if !yield(ev, err) {
				return
			}
			var le *LineError
			if err != nil && !errors.As(err, &le) {
				return
			}
		}
	}
}

// Close closes the file opened by Open.
func (r *Reader) Close() error {
	if r.c == nil {
		return nil
	}
	if err := r.c.Close(); err != nil {
		return fmt.Errorf("close history: %w", err)
	}
	return nil
}
