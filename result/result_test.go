package result

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		v    Verdict
		want int
	}{{Passed, 0}, {Failed, 1}, {Invalid, 2}, {Error, 3}, {Aborted, 4}, {"bogus", 3}} {
		assert.Equal(t, tc.want, tc.v.ExitCode(), tc.v)
	}
}

func TestWorst(t *testing.T) {
	for _, tc := range []struct {
		in   []Verdict
		want Verdict
	}{
		{nil, Passed},
		{[]Verdict{Passed, Passed}, Passed},
		{[]Verdict{Passed, Failed, Passed}, Failed},
		{[]Verdict{Failed, Invalid}, Invalid},
		{[]Verdict{Invalid, Aborted, Failed}, Aborted},
		{[]Verdict{Aborted, Error}, Error},
		{[]Verdict{Passed, "bogus"}, Error},
	} {
		assert.Equal(t, tc.want, Worst(tc.in...), "%v", tc.in)
	}
}

func TestSaveAndLoadRoundTrip(t *testing.T) {
	r := &Run{Scenario: "baseline", Verdict: Failed, Seed: 7, StartedAt: time.Unix(1700000000, 0).UTC(), Duration: Duration(1500 * time.Millisecond),
		Checks: []Check{{Name: "after/error_rate", Kind: "error_rate", Figure: 0.2, Op: "<=", Threshold: 0.01}},
		Phases: []Phase{{Name: "before", Start: 0, End: Duration(time.Second)}}}
	path := filepath.Join(t.TempDir(), "result.json")
	require.NoError(t, r.Save(path))
	got, err := LoadFile(path)
	require.NoError(t, err)
	assert.Equal(t, r, got)
	assert.Len(t, got.FailedChecks(), 1)
}

func TestReadRejects(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"unknown field", `{"version":1,"scenario":"x","verdict":"passed","surprise":1}`, `unknown field "surprise"`},
		{"newer version", `{"version":9,"scenario":"x","verdict":"passed"}`, "version 9 is not supported"},
		{"bad verdict", `{"version":1,"scenario":"x","verdict":"meh"}`, `verdict "meh" is unknown`},
		{"no scenario", `{"version":1,"verdict":"passed"}`, "scenario is empty"},
		{"repeated check", `{"version":1,"scenario":"x","verdict":"passed","checks":[{"name":"a"},{"name":"a"}]}`, `name "a" is repeated`},
		{"bad duration", `{"version":1,"scenario":"x","verdict":"passed","duration":"soon"}`, "parse duration"},
		{"not json", `verdict: passed`, "decode result"},
		{"phase backwards", `{"version":1,"scenario":"x","verdict":"passed","phases":[{"name":"p","start":"2s","end":"1s"}]}`, "ends before it starts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tc.in))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	require.NoError(f, (&Run{Scenario: "s", Verdict: Passed}).Write(&buf))
	f.Add(buf.Bytes())
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Read(bytes.NewReader(b))
		if err == nil && len(r.Validate()) > 0 {
			t.Fatalf("Read accepted an invalid result")
		}
	})
}
