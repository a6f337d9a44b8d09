package scenarios

import (
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse and Validate: whatever the input, they must
// return problems, never panic or hang. The committed corpus in testdata/fuzz/FuzzParse
// holds the catalog and the malformed files.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("a: &a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, fd := range []FaultDecoder{stubFaults{}, DefaultFaultDecoder()} {
			s, err := Parse("fuzz.yaml", data, WithFaultDecoder(fd))
			if s == nil {
				if err == nil {
					t.Fatal("nil scenario without an error")
				}
				continue
			}
			errs := s.Validate(SystemShape{})
			if err != nil && len(errs) == 0 {
				t.Fatalf("Parse found problems that Validate dropped: %v", err)
			}
			for _, e := range errs {
				if _, ok := e.(*Error); !ok {
					t.Fatalf("problem without a position: %v", e)
				}
			}
		}
	})
}
