package scenarios

import (
	"fmt"
	"sort"
	"strings"
)

// Position is a 1-based line and column in a scenario file. The zero Position means
// "the whole file", for problems (such as the size limit) that have no better place.
type Position struct {
	Line   int `json:"line"`
	Column int `json:"column"`
}

// Error is one problem in a scenario file. It carries the position and a hint separately
// so that editors and the CLI can present them, while Error() keeps the compiler-like
// "file:line:col: message (hint: ...)" form people can click on.
type Error struct {
	File string
	Position
	Msg  string
	Hint string
}

// Error formats e as file:line:col: message (hint: ...).
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString(" (hint: ")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// ErrorList is every problem found in one file, in file order. It is an error itself so
// Parse can return all problems at once instead of stopping at the first.
type ErrorList []*Error

// Error joins the problems one per line.
func (l ErrorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Errors converts l to the []error shape Validate methods return.
func (l ErrorList) Errors() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// sorted orders problems by position and drops exact duplicates, so that output does not
// depend on map iteration order and a problem reached by two paths is reported once.
func (l ErrorList) sorted() ErrorList {
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].Line != l[j].Line {
			return l[i].Line < l[j].Line
		}
		return l[i].Column < l[j].Column
	})
	out := l[:0]
	seen := map[string]bool{}
	for _, e := range l {
		k := e.Error()
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, e)
	}
	return out
}

// hinted is an error that carries a hint, returned by the scalar types' UnmarshalYAML so
// that the decoder can split message and hint.
type hinted struct {
	msg, hint string
}

func (h *hinted) Error() string {
	if h.hint == "" {
		return h.msg
	}
	return h.msg + " (hint: " + h.hint + ")"
}

func hint(hint, format string, args ...any) error {
	return &hinted{msg: fmt.Sprintf(format, args...), hint: hint}
}

// levenshtein is the edit distance between a and b, used for "did you mean" hints.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// suggest returns the closest candidate to s when it is close enough to be a typo.
func suggest(s string, candidates []string) (string, bool) {
	best, bestD := "", -1
	for _, c := range candidates {
		d := levenshtein(strings.ToLower(s), strings.ToLower(c))
		if bestD < 0 || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	limit := max(2, len([]rune(s))/3)
	if bestD < 0 || bestD > limit || bestD >= len([]rune(s)) {
		return "", false
	}
	return best, true
}

// choiceHint is the hint for a value that is not one of candidates: the closest one when
// it looks like a typo, otherwise the whole list.
func choiceHint(s string, candidates []string) string {
	if c, ok := suggest(s, candidates); ok {
		return fmt.Sprintf("did you mean %q?", c)
	}
	return "want one of " + strings.Join(candidates, ", ")
}
