package loadgen_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/loadgen"
)

func TestHTTPTargetValidate(t *testing.T) {
	tests := []struct {
		name   string
		target loadgen.HTTPTarget
		want   []string
	}{
		{name: "valid", target: loadgen.HTTPTarget{Name: "cart", Method: "GET", URL: "/cart/{{.Client}}"}},
		{name: "empty", target: loadgen.HTTPTarget{}, want: []string{"name is empty", "url is empty"}},
		{name: "method with a space", target: loadgen.HTTPTarget{Name: "x", Method: "GE T", URL: "/"}, want: []string{`method "GE T" is not an HTTP method`}},
		{name: "bad template", target: loadgen.HTTPTarget{Name: "x", Method: "POST", URL: "/x/{{.Seq", Body: "{{end}}"},
			want: []string{"parse url template", "parse body template"}},
		{name: "bad header and status", target: loadgen.HTTPTarget{Name: "x", Method: "GET", URL: "/",
			Headers: map[string]string{"Bad Name": "v"}, Expect: []int{200, 999}},
			want: []string{`header name "Bad Name"`, "status 999"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.target.Validate()
			require.Len(t, errs, len(tt.want), "errors: %v", errs)
			for i, want := range tt.want {
				assert.Contains(t, errs[i].Error(), want)
			}
		})
	}
	_, err := loadgen.NewHTTPJourney(loadgen.HTTPTarget{})
	assert.ErrorContains(t, err, "compile target")
}

// TestHTTPTargetMethodDefaultsToGET: the scenario schema documents GET as the default, so a
// target without a method must plan GET requests, whoever builds it.
func TestHTTPTargetMethodDefaultsToGET(t *testing.T) {
	j, err := loadgen.NewHTTPJourney(loadgen.HTTPTarget{Name: "home", URL: "/"})
	require.NoError(t, err)
	plans, err := loadgen.Preview(loadgen.Spec{Rate: loadgen.Rate{Freq: 10, Per: time.Second}, Duration: time.Second,
		Mix: map[string]int{"home": 1}, Journeys: []loadgen.Journey{j}}, 3)
	require.NoError(t, err)
	require.Len(t, plans, 3)
	for _, p := range plans {
		assert.Equal(t, http.MethodGet, p.Method)
	}
}

func TestHTTPJourneyAgainstServer(t *testing.T) {
	var mu sync.Mutex
	got := map[string]received{}
	target := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.Header.Get("X-Faultline-Seq")] = received{Method: r.Method, Path: r.URL.Path + "?" + r.URL.RawQuery,
			Key: r.Header.Get("Idempotency-Key"), Auth: r.Header.Get("Authorization"), Body: string(body)}
		mu.Unlock()
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusConflict) // declared as success below
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	add, err := loadgen.NewHTTPJourney(loadgen.HTTPTarget{
		Name: "add_to_cart", Method: "post", URL: "/carts/{{.Client}}/items?n={{.Rand 1 5}}",
		Headers: map[string]string{"Idempotency-Key": "{{.Key}}", "Authorization": "Bearer {{.Token}}"},
		Body:    `{"seq":{{.Seq}},"sku":"{{.Pick "a" "b"}}"}`,
	}, loadgen.WithToken(token))
	require.NoError(t, err)
	clear, err := loadgen.NewHTTPJourney(loadgen.HTTPTarget{Name: "clear", Method: "DELETE", URL: "/carts/{{.Client}}", Expect: []int{409}})
	require.NoError(t, err)
	spec := loadgen.Spec{
		Rate: mustRate(t, "100/s"), Duration: time.Second, Seed: 9, Clients: 3,
		Journeys: []loadgen.Journey{add, clear}, Mix: map[string]int{"add_to_cart": 4, "clear": 1},
	}
	results, sum := collect(t, spec, target)
	require.Len(t, results, 100)
	assert.Equal(t, uint64(100), sum.OK, "every answer was an expected status: %v", sum.Statuses)
	for _, r := range results {
		seen := got[strconv.FormatUint(r.Seq, 10)]
		switch r.Journey {
		case "add_to_cart":
			assert.Equal(t, http.MethodPost, seen.Method)
			assert.Regexp(t, `^/carts/`+strconv.Itoa(r.Client)+`/items\?n=[1-5]$`, seen.Path)
			assert.Equal(t, r.Key, seen.Key)
			assert.Equal(t, "Bearer "+token(r.Client), seen.Auth)
			assert.Regexp(t, `^\{"seq":`+strconv.FormatUint(r.Seq, 10)+`,"sku":"[ab]"\}$`, seen.Body)
			assert.Equal(t, http.StatusAccepted, r.Status)
		case "clear":
			assert.Equal(t, http.MethodDelete, seen.Method)
			assert.Equal(t, http.StatusConflict, r.Status)
		default:
			t.Fatalf("unexpected journey %q", r.Journey)
		}
		assert.True(t, r.OK)
	}
}

func TestPlanErrorStopsTheRun(t *testing.T) {
	bad, err := loadgen.NewHTTPJourney(loadgen.HTTPTarget{Name: "bad", Method: "GET", URL: "/x/{{.Rand 5 1}}"})
	require.NoError(t, err)
	spec := loadgen.Spec{Rate: mustRate(t, "100/s"), Duration: time.Second, Journeys: []loadgen.Journey{bad}, Mix: map[string]int{"bad": 1}}
	_, err = loadgen.Run(context.Background(), spec, serve(t, http.NotFoundHandler()), nil)
	assert.ErrorContains(t, err, "plan request 1 (bad)")
	assert.ErrorContains(t, err, "draw rand: 5 > 1")
}
