package compare

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cpuEvery is how often the sweep samples the machine's CPU: fine enough that a load of a
// few seconds has a dozen samples, coarse enough to cost nothing.
const cpuEvery = 250 * time.Millisecond

// cpuSample is the machine's CPU counters (/proc/stat, in clock ticks) and this process's
// CPU time at one moment.
type cpuSample struct {
	at          time.Time
	busy, total uint64
	self        time.Duration
	ok          bool // the machine's counters could be read
}

// cpuSampler samples the CPU in the background while a sweep runs, so each point can say
// how busy the machine and the harness were during its load.
type cpuSampler struct {
	mu      sync.Mutex
	samples []cpuSample
	stop    func()
}

func startCPUSampler(ctx context.Context) *cpuSampler {
	c := &cpuSampler{}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	c.add()
	wg.Go(func() {
		t := time.NewTicker(cpuEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.add()
			}
		}
	})
	c.stop = sync.OnceFunc(func() { cancel(); wg.Wait() })
	return c
}

func (c *cpuSampler) add() {
	s := readCPU()
	c.mu.Lock()
	c.samples = append(c.samples, s)
	c.mu.Unlock()
}

// share returns the machine's busy share of all its cores over [from, to] and the share
// this process took of the same capacity, from the last sample at or before from to the
// first at or after to (the span widens by at most one sampling interval each side); -1
// when the samples cannot tell (no /proc/stat, or no sample brackets the span).
func (c *cpuSampler) share(from, to time.Time) (machine, self float64) {
	if c == nil {
		return -1, -1
	}
	c.add() // a sample now, so a span that just ended is bracketed
	c.mu.Lock()
	defer c.mu.Unlock()
	var a, b *cpuSample
	for i := range c.samples {
		s := &c.samples[i]
		if !s.at.After(from) {
			a = s
		}
		if b == nil && !s.at.Before(to) {
			b = s
		}
	}
	if a == nil || b == nil || !b.at.After(a.at) {
		return -1, -1
	}
	machine, self = -1, -1
	if a.ok && b.ok && b.total > a.total {
		machine = float64(b.busy-a.busy) / float64(b.total-a.total)
	}
	if n := numCPU(); n > 0 {
		self = float64(b.self-a.self) / (float64(b.at.Sub(a.at)) * float64(n))
	}
	return machine, self
}

func numCPU() int { return runtime.NumCPU() }

// readCPU reads the machine's aggregate CPU line of /proc/stat (user nice system idle
// iowait irq softirq steal ...; idle and iowait are not busy) and this process's user and
// system time.
func readCPU() cpuSample {
	s := cpuSample{at: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	f, err := os.Open("/proc/stat")
	if err != nil {
		return s
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return s
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return s
	}
	for i, v := range fields[1:] {
		if i >= 8 { // guest time is already counted in user
			break
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return s
		}
		s.total += n
		if i != 3 && i != 4 {
			s.busy += n
		}
	}
	s.ok = true
	return s
}
