package reports

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

var (
	bigOnce sync.Once
	bigPath string
	bigDir  string
)

// TestMain removes the benchmark's generated history, which outlives any one benchmark
// run so that it is written once per process.
func TestMain(m *testing.M) {
	code := m.Run()
	if bigDir != "" {
		_ = os.RemoveAll(bigDir)
	}
	os.Exit(code)
}

// BenchmarkHTML1M renders the page for a history of one million requests (about 17
// minutes at 1000 req/s, with metrics every 250 ms). Targets: well under 10 s per render
// and a peak heap independent of the number of requests.
func BenchmarkHTML1M(b *testing.B) {
	bigOnce.Do(func() {
		dir, err := os.MkdirTemp("", "faultline-reports-bench-")
		if err != nil {
			b.Fatal(err)
		}
		bigDir = dir
		bigPath = filepath.Join(dir, "history.jsonl")
		writeHistory(b, bigPath, synth{requests: 1_000_000, duration: 1000 * time.Second,
			faultAt: 300 * time.Second, faultFor: 120 * time.Second, seed: 9, slow: 20})
	})
	if bigPath == "" {
		b.Fatal("the benchmark history was not generated")
	}
	run := fixtureRun()
	run.Duration = d("1000s")
	run.Faults[0].Injected, run.Faults[0].Healed = d("300s"), d("420s")

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if err := HTML(context.Background(), io.Discard, run, bigPath); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	close(stop)
	<-done
	b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/render")
	b.ReportMetric(float64(peak-min(peak, base.HeapAlloc))/(1<<20), "peak-heap-MiB")
}
