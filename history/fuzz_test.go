package history

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzReader reads arbitrary bytes as a history: `faultline report` may be pointed at any
// file, so every line must decode or be reported with its number, and reading must end.
func FuzzReader(f *testing.F) {
	f.Add(`{"t":1,"kind":"note","note":{"text":"hi"}}` + "\n")
	f.Add(`{"t":5,"kind":"request","request":{"seq":1,"journey":"browse","status":200}}` + "\n" + `{"t":`)
	f.Add("\n\n{}\n[1,2]\n\"x\"\n")
	f.Fuzz(func(t *testing.T, data string) {
		r := NewReader(strings.NewReader(data))
		lines := strings.Count(data, "\n") + 1
		for i := 0; i <= lines+1; i++ {
			_, err := r.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			var le *LineError
			if err != nil && !errors.As(err, &le) {
				return // a read error ends the stream; what matters is no panic and no loop
			}
		}
		t.Fatalf("reader did not reach the end of %d lines", lines)
	})
}
