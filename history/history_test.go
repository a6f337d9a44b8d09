package history_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
)

func sampleResult(seq uint64) loadgen.Result {
	return loadgen.Result{
		Seq: seq, Journey: "place_order", Client: 3, Method: "POST", Path: "/orders",
		Planned: 20 * time.Millisecond, Start: 21 * time.Millisecond, Latency: 4 * time.Millisecond,
		Status: 201, OK: true, Key: loadgen.KeyFor(1, seq), Created: "o-17",
		Attrs: map[string]string{"product": "p-002", "merchant": "m-02", "quantity": "2"}, ServedBy: "gateway-1", BytesIn: 40, BytesOut: 60,
	}
}

func readAll(t *testing.T, r *history.Reader) []history.Event {
	t.Helper()
	var out []history.Event
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		out = append(out, ev)
	}
}

func TestRoundTripEveryKind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	w, err := history.Create(path, time.Now())
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	fault := history.Fault{Action: history.FaultInject, Name: "slow-product", Type: "latency", Target: "order->product-2",
		Params:     map[string]string{"latency": "300ms"},
		Configured: &history.Effect{Quantity: "added_latency", Value: 0.3, Unit: "s"},
		Measured:   &history.Effect{Quantity: "added_latency", Value: 0.31, Unit: "s"}}
	metric := history.Metric{Component: "gateway-1", Name: "faultline_breaker_state",
		Labels: map[string]string{"caller": "gateway", "dependency": "product"}, Value: 2}
	events := []history.Event{
		history.PhaseEvent("steady", history.PhaseStart),
		history.RequestEvent(sampleResult(1)),
		history.FaultEvent(fault),
		history.MetricEvent(metric),
		history.NoteEvent("manual fault from the workshop"),
		history.PhaseEvent("steady", history.PhaseEnd),
	}
	for _, ev := range events {
		require.NoError(t, w.Write(ev))
	}
	require.NoError(t, w.Close())

	r, err := history.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	got := readAll(t, r)
	require.Len(t, got, len(events))
	var prev time.Duration
	for i, ev := range got {
		assert.Equal(t, events[i].Kind, ev.Kind)
		assert.GreaterOrEqual(t, ev.T, prev, "event %d goes back in time", i)
		assert.Positive(t, ev.T, "event %d is stamped", i)
		prev = ev.T
	}
	p, ok := got[0].AsPhase()
	require.True(t, ok)
	assert.Equal(t, history.Phase{Name: "steady", Edge: history.PhaseStart}, p)
	req, ok := got[1].AsRequest()
	require.True(t, ok)
	assert.Equal(t, sampleResult(1), req)
	_, ok = got[1].AsFault()
	assert.False(t, ok, "a request event is not a fault")
	f, ok := got[2].AsFault()
	require.True(t, ok)
	assert.Equal(t, fault, f)
	m, ok := got[3].AsMetric()
	require.True(t, ok)
	assert.Equal(t, metric, m)
	n, ok := got[4].AsNote()
	require.True(t, ok)
	assert.Equal(t, "manual fault from the workshop", n.Text)
}

func TestExplicitStampIsKept(t *testing.T) {
	var buf bytes.Buffer
	w := history.NewWriter(&buf, time.Now())
	ev := history.NoteEvent("fixture")
	ev.T = 1500 * time.Millisecond
	require.NoError(t, w.Write(ev))
	require.NoError(t, w.Close())
	assert.Equal(t, `{"t":1500000000,"kind":"note","note":{"text":"fixture"}}`+"\n", buf.String())
}

func TestWriteRejects(t *testing.T) {
	var buf bytes.Buffer
	w := history.NewWriter(&buf, time.Now())
	tests := []struct {
		name string
		ev   history.Event
		want string
	}{
		{name: "no kind", ev: history.Event{}, want: "event has no kind"},
		{name: "no payload", ev: history.Event{Kind: history.KindFault}, want: "fault event has no fault payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorContains(t, w.Write(tt.ev), tt.want)
		})
	}
	require.NoError(t, w.Close())
	assert.ErrorIs(t, w.Write(history.NoteEvent("late")), history.ErrClosed)
	assert.Empty(t, buf.String())
}

func TestCreateRefusesToOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.jsonl")
	require.NoError(t, os.WriteFile(path, []byte("precious\n"), 0o644))
	_, err := history.Create(path, time.Now())
	assert.ErrorContains(t, err, "create history")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "precious\n", string(b))
}

func TestConcurrentWritesStayWholeAndOrdered(t *testing.T) {
	var buf bytes.Buffer
	w := history.NewWriter(&buf, time.Now(), history.WithBufferSize(4096))
	const writers, each = 8, 500
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				assert.NoError(t, w.Write(history.RequestEvent(sampleResult(uint64(g*each+i+1)))))
			}
		})
	}
	wg.Wait()
	require.NoError(t, w.Close())
	got := readAll(t, history.NewReader(&buf))
	require.Len(t, got, writers*each)
	seen := map[uint64]bool{}
	var prev time.Duration
	for _, ev := range got {
		r, ok := ev.AsRequest()
		require.True(t, ok)
		seen[r.Seq] = true
		require.GreaterOrEqual(t, ev.T, prev)
		prev = ev.T
	}
	assert.Len(t, seen, writers*each)
}

func TestTruncatedLastLine(t *testing.T) {
	var buf bytes.Buffer
	w := history.NewWriter(&buf, time.Now())
	for i := range 3 {
		require.NoError(t, w.Write(history.RequestEvent(sampleResult(uint64(i+1)))))
	}
	require.NoError(t, w.Close())
	whole := buf.Bytes()
	// A harness killed mid-write leaves half a line.
	cut := append(append([]byte{}, whole...), whole[:40]...)
	r := history.NewReader(bytes.NewReader(cut))
	for i := range 3 {
		ev, err := r.Next()
		require.NoError(t, err, "event %d before the cut", i+1)
		req, _ := ev.AsRequest()
		assert.Equal(t, uint64(i+1), req.Seq)
	}
	_, err := r.Next()
	var le *history.LineError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, 4, le.Line)
	assert.ErrorIs(t, err, history.ErrTruncated)
	assert.Contains(t, err.Error(), "read history line 4")
	_, err = r.Next()
	assert.ErrorIs(t, err, io.EOF)
}

func TestCorruptLineIsReportedAndSkipped(t *testing.T) {
	in := `{"t":1,"kind":"note","note":{"text":"a"}}
{"t":2,"kind":"note","no
{"t":3,"kind":"request"}
{"t":4,"kind":"future","future":{}}

{"t":5,"kind":"note","note":{"text":"b"}}`
	r := history.NewReader(bytes.NewBufferString(in))
	type step struct {
		t    time.Duration
		line int
		err  string
	}
	want := []step{
		{t: 1, line: 1},
		{line: 2, err: "read history line 2: decode event"},
		{line: 3, err: "read history line 3: request event has no request payload"},
		{t: 4, line: 4},
		{t: 5, line: 6}, // the last line has no newline but is whole
	}
	var got []step
	for ev, err := range r.Events() {
		s := step{t: ev.T, line: r.Line()}
		if err != nil {
			s.err = err.Error()[:len(want[len(got)].err)]
		}
		got = append(got, s)
	}
	assert.Equal(t, want, got)
}

func TestPeriodicFlush(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.jsonl")
	w, err := history.Create(path, time.Now(), history.WithFlushInterval(10*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	require.NoError(t, w.Write(history.NoteEvent("visible before close")))
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(path)
		return err == nil && bytes.Contains(b, []byte("visible before close"))
	}, 10*time.Second, 10*time.Millisecond)
}

func TestReadingUsesBoundedMemory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.jsonl")
	const n = 100_000
	writeRequests(t, path, n)
	r, err := history.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	var ms runtime.MemStats
	var peak uint64
	count := 0
	for ev, err := range r.Events() {
		require.NoError(t, err)
		if _, ok := ev.AsRequest(); ok {
			count++
		}
		if count%10_000 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, n, count)
	// The file is tens of megabytes; reading it must not hold it.
	assert.Less(t, peak, uint64(st.Size()/2), "peak heap %d for a %d-byte history", peak, st.Size())
}

func writeRequests(tb testing.TB, path string, n int) {
	tb.Helper()
	w, err := history.Create(path, time.Now(), history.WithFlushInterval(0))
	require.NoError(tb, err)
	r := sampleResult(0)
	for i := range n {
		r.Seq = uint64(i + 1)
		if err := w.Write(history.RequestEvent(r)); err != nil {
			tb.Fatal(err)
		}
	}
	require.NoError(tb, w.Close())
}

func BenchmarkWriteRequests(b *testing.B) {
	r := sampleResult(0)
	b.ReportAllocs()
	w := history.NewWriter(io.Discard, time.Now(), history.WithFlushInterval(0))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r.Seq = uint64(i)
		if err := w.Write(history.RequestEvent(r)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	require.NoError(b, w.Close())
}

// BenchmarkMillionRequests writes then streams back a history of one million request
// events, the size of a long run at a few thousand requests a second.
func BenchmarkMillionRequests(b *testing.B) {
	const n = 1_000_000
	path := filepath.Join(b.TempDir(), "h.jsonl")
	for b.Loop() {
		_ = os.Remove(path)
		start := time.Now()
		writeRequests(b, path, n)
		wrote := time.Since(start)
		rd, err := history.Open(path)
		require.NoError(b, err)
		var ms runtime.MemStats
		var peak uint64
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		start = time.Now()
		count := 0
		for ev, err := range rd.Events() {
			if err != nil {
				b.Fatal(err)
			}
			if ev.Kind == history.KindRequest {
				count++
			}
			if count%100_000 == 0 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
		read := time.Since(start)
		runtime.ReadMemStats(&ms)
		_ = rd.Close()
		if count != n {
			b.Fatalf("read %d events, want %d", count, n)
		}
		st, _ := os.Stat(path)
		b.ReportMetric(n/wrote.Seconds(), "write-events/s")
		b.ReportMetric(n/read.Seconds(), "read-events/s")
		b.ReportMetric(float64(ms.Mallocs-before.Mallocs)/n, "read-allocs/event")
		b.ReportMetric(float64(peak)/(1<<20), "read-peak-heap-MiB")
		b.ReportMetric(float64(st.Size())/n, "bytes/event")
	}
}

func TestLabelString(t *testing.T) {
	for _, tc := range []struct {
		labels map[string]string
		want   string
	}{
		{nil, ""},
		{map[string]string{}, ""},
		{map[string]string{"caller": "gateway"}, "{caller=gateway}"},
		{map[string]string{"dependency": "product", "caller": "gateway"}, "{caller=gateway,dependency=product}"},
	} {
		got := history.LabelString(tc.labels)
		if got != tc.want {
			t.Errorf("LabelString(%v) = %q, want %q", tc.labels, got, tc.want)
		}
	}
}

// stallWriter blocks every Write until released, as a file does on a disk that stalls
// (writeback throttling on a loaded machine); entered says a Write is waiting.
type stallWriter struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (s *stallWriter) Write(p []byte) (int, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// A history's file that stalls must not stall its writers: the harness writes every
// request's outcome from the load's result loop, and a Write that waited for the disk
// would hold back the load generator itself (its workers wait to hand over results), so a
// slow disk would pass for a harness that cannot keep its rate. Nothing is lost: what was
// written while the file stalled reaches it, in order, once it takes writes again.
func TestWriteDoesNotWaitForAStalledFile(t *testing.T) {
	sw := &stallWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	w := history.NewWriter(sw, time.Now(), history.WithFlushInterval(0), history.WithBufferSize(4096))
	require.NoError(t, w.Write(history.NoteEvent("before the stall")))
	flushed := make(chan error, 1)
	go func() { flushed <- w.Flush() }()
	select {
	case <-sw.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the flush never reached the file")
	}

	// The file is stalled inside Flush. Enough writes to fill the buffer several times.
	wrote := make(chan error, 1)
	go func() {
		r := sampleResult(0)
		for i := range 200 {
			r.Seq = uint64(i + 1)
			if err := w.Write(history.RequestEvent(r)); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	select {
	case err := <-wrote:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		close(sw.release)
		t.Fatal("Write waited for the stalled file")
	}

	close(sw.release)
	require.NoError(t, <-flushed)
	require.NoError(t, w.Close())
	got := readAll(t, history.NewReader(&sw.buf))
	require.Len(t, got, 201)
	assert.Equal(t, history.KindNote, got[0].Kind)
	for i, ev := range got[1:] {
		r, ok := ev.AsRequest()
		require.True(t, ok)
		assert.Equal(t, uint64(i+1), r.Seq)
	}
}
