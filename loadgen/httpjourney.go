package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"text/template"
)

// HTTPTarget declares a user's own request in a scenario, so the harness can load services
// other than the reference system. URL, header values and Body are text/template templates
// over TemplateData: "/users/{{.Client}}/cart", "{{.Rand 1 100}}", "Bearer {{.Token}}".
type HTTPTarget struct {
	Name    string            `json:"name" yaml:"name"`
	Method  string            `json:"method" yaml:"method"`
	URL     string            `json:"url" yaml:"url"` // relative to the run's target, or absolute
	Headers map[string]string `json:"headers,omitempty" yaml:"headers,omitempty"`
	Body    string            `json:"body,omitempty" yaml:"body,omitempty"`
	// Expect lists the statuses that count as success; empty means any 2xx.
	Expect []int `json:"expect,omitempty" yaml:"expect,omitempty"`
}

// Validate reports every problem with t at once, templates included.
func (t HTTPTarget) Validate() []error {
	_, errs := compileTarget(t)
	return errs
}

// TemplateData is what an HTTPTarget's templates see.
type TemplateData struct {
	Seq    uint64 // 1-based position in the schedule
	Client int    // virtual client, 0-based
	Key    string // the request's seeded idempotency key
	Token  string // the client's bearer token, when the journey has a token function
	rng    *rand.Rand
}

// Rand draws a whole number in [lo, hi] from the schedule's seeded RNG.
func (d TemplateData) Rand(lo, hi int) (int, error) {
	if hi < lo {
		return 0, fmt.Errorf("draw rand: %d > %d", lo, hi)
	}
	return lo + d.rng.IntN(hi-lo+1), nil
}

// Pick draws one of its arguments with the schedule's seeded RNG.
func (d TemplateData) Pick(choices ...string) (string, error) {
	if len(choices) == 0 {
		return "", errors.New("draw pick: no choices")
	}
	return choices[d.rng.IntN(len(choices))], nil
}

// HTTPOption configures a journey built from an HTTPTarget.
type HTTPOption func(*httpJourney)

// WithToken gives templates {{.Token}}, the bearer token of the request's virtual client.
func WithToken(token func(client int) string) HTTPOption {
	return func(j *httpJourney) { j.token = token }
}

// NewHTTPJourney compiles a declared target into a Journey.
func NewHTTPJourney(t HTTPTarget, opts ...HTTPOption) (Journey, error) {
	j, errs := compileTarget(t)
	if len(errs) > 0 {
		return nil, fmt.Errorf("compile target %q: %w", t.Name, errors.Join(errs...))
	}
	for _, o := range opts {
		o(j)
	}
	return j, nil
}

type header struct {
	name string
	tmpl *template.Template
}

type httpJourney struct {
	t       HTTPTarget
	url     *template.Template
	headers []header // sorted by name: templates draw from the RNG in a fixed order
	body    *template.Template
	token   func(int) string
}

var _ Journey = (*httpJourney)(nil)

func compileTarget(t HTTPTarget) (*httpJourney, []error) {
	var errs []error
	j := &httpJourney{t: t}
	if t.Name == "" {
		errs = append(errs, errors.New("target name is empty"))
	}
	if t.Method == "" {
		// The scenario schema documents GET as the default; every caller gets it here.
		t.Method = http.MethodGet
		j.t.Method = t.Method
	}
	if strings.ContainsAny(t.Method, " \t\r\n") {
		errs = append(errs, fmt.Errorf("target %q: method %q is not an HTTP method", t.Name, t.Method))
	}
	parse := func(what, text string) *template.Template {
		tm, err := template.New(what).Option("missingkey=error").Parse(text)
		if err != nil {
			errs = append(errs, fmt.Errorf("target %q: parse %s template: %w", t.Name, what, err))
		}
		return tm
	}
	if t.URL == "" {
		errs = append(errs, fmt.Errorf("target %q: url is empty", t.Name))
	}
	j.url = parse("url", t.URL)
	names := make([]string, 0, len(t.Headers))
	for name := range t.Headers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "" || strings.ContainsAny(name, " \t\r\n:") {
			errs = append(errs, fmt.Errorf("target %q: header name %q is invalid", t.Name, name))
		}
		j.headers = append(j.headers, header{name: name, tmpl: parse("header "+name, t.Headers[name])})
	}
	if t.Body != "" {
		j.body = parse("body", t.Body)
	}
	for _, code := range t.Expect {
		if code < 100 || code > 599 {
			errs = append(errs, fmt.Errorf("target %q: expected status %d is not an HTTP status", t.Name, code))
		}
	}
	return j, errs
}

func (j *httpJourney) Name() string { return j.t.Name }

func (j *httpJourney) Plan(p *Plan, s *State) error {
	data := TemplateData{Seq: p.Seq, Client: p.Client, Key: p.Key, rng: s.Rand()}
	if j.token != nil {
		data.Token = j.token(p.Client)
	}
	var buf bytes.Buffer
	render := func(tm *template.Template) (string, error) {
		buf.Reset()
		if err := tm.Execute(&buf, data); err != nil {
			return "", fmt.Errorf("render %s: %w", tm.Name(), err)
		}
		return buf.String(), nil
	}
	path, err := render(j.url)
	if err != nil {
		return err
	}
	p.Method, p.Path = strings.ToUpper(j.t.Method), path
	p.Header = make(http.Header, len(j.headers))
	for _, h := range j.headers {
		v, err := render(h.tmpl)
		if err != nil {
			return err
		}
		p.Header.Set(h.name, v)
	}
	if j.body != nil {
		b, err := render(j.body)
		if err != nil {
			return err
		}
		p.Body = []byte(b)
	}
	return nil
}

func (j *httpJourney) Resolve(*Plan, *State) error { return nil }

func (j *httpJourney) Observe(_ *Plan, r *Result, _ []byte, _ *State) {
	if len(j.t.Expect) == 0 {
		r.OK = r.Status >= 200 && r.Status < 300
		return
	}
	r.OK = slices.Contains(j.t.Expect, r.Status)
}
