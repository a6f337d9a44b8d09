package faultlinetest_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/faultline-dev/faultline/faultlinetest"
	"github.com/faultline-dev/faultline/result"
)

// exampleT stands in for the *testing.T a test function receives, so the example runs.
type exampleT struct {
	testing.TB
	dirs []string
}

func (t *exampleT) Helper()                   {}
func (t *exampleT) Log(args ...any)           {}
func (t *exampleT) Logf(string, ...any)       {}
func (t *exampleT) Errorf(f string, a ...any) { fmt.Printf("error: "+f+"\n", a...) }
func (t *exampleT) Fatalf(f string, a ...any) { fmt.Printf("fatal: "+f+"\n", a...) }
func (t *exampleT) FailNow()                  {}
func (t *exampleT) TempDir() string {
	d, _ := os.MkdirTemp("", "faultlinetest-example-")
	t.dirs = append(t.dirs, d)
	return d
}

// In a team's own test, Run takes the test's *testing.T and a scenario whose topology
// names the team's components; the test fails, one line per failed check, unless the
// verdict is passed.
func ExampleRun() {
	t := &exampleT{}
	defer func() {
		for _, d := range t.dirs {
			_ = os.RemoveAll(d)
		}
	}()
	res := faultlinetest.Run(t, "testdata/static-site.yaml")
	fmt.Println(res.Verdict, res.Faults[0].Effect.Landed)
	// Output: passed true
}

// FailureLine is how Run reports a failed check: its figure, the bound it was held to,
// and its message.
func ExampleFailureLine() {
	c := result.Check{Name: "slowed", Figure: 302, Op: "<=", Threshold: 250, Unit: "ms",
		Message: "p50 latency 302 ms > 250 ms during slow-api"}
	fmt.Println(faultlinetest.FailureLine(c))
	// Output: check slowed: figure 302 ms <= threshold 250 ms — p50 latency 302 ms > 250 ms during slow-api
}
