package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// Defaults of the live checks.
const (
	DefaultProbeTimeout   = 2 * time.Second
	DefaultCommandTimeout = 10 * time.Second
	maxProbeBody          = 1 << 20
	maxCommandOutput      = 4 << 10
)

// Probe calls the probe's URL (a path is resolved against baseURL, the gateway) with
// token as bearer token when not empty, and checks the status and body. The figure is the
// status received (0 when no answer came). Name and Phase are left to the caller (see
// LiveCheck.Run).
func Probe(ctx context.Context, spec *scenarios.HTTPProbeCheck, baseURL, token string) result.Check {
	c := result.Check{Kind: scenarios.CheckHTTPProbe, Op: "==", Unit: "status"}
	if spec == nil {
		c.Skipped, c.Message = true, "http_probe has no spec"
		return c
	}
	want := spec.Status
	if want == 0 {
		want = http.StatusOK
	}
	c.Threshold = float64(want)
	method := spec.Method
	if method == "" {
		method = http.MethodGet
	}
	target := spec.URL
	if strings.HasPrefix(target, "/") {
		if baseURL == "" {
			c.Skipped, c.Message = true, fmt.Sprintf("http_probe of %s needs the gateway address", target)
			return c
		}
		target = strings.TrimRight(baseURL, "/") + target
	}
	timeout := spec.Timeout.Std()
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	what := method + " " + spec.URL
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		c.Message = fmt.Sprintf("%s: build request: %v", what, err)
		return c
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.Message = fmt.Sprintf("%s got no answer: %v", what, err)
		return c
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	c.Figure = float64(resp.StatusCode)
	switch {
	case resp.StatusCode != want:
		c.Message = fmt.Sprintf("%s answered %d, want %d", what, resp.StatusCode, want)
	case err != nil:
		c.Message = fmt.Sprintf("%s answered %d but its body could not be read: %v", what, resp.StatusCode, err)
	case spec.BodyContains != "" && !bytes.Contains(body, []byte(spec.BodyContains)):
		c.Message = fmt.Sprintf("%s answered %d but its body does not contain %q", what, resp.StatusCode, spec.BodyContains)
	default:
		c.Passed = true
		c.Message = fmt.Sprintf("%s answered %d", what, resp.StatusCode)
	}
	if !c.Passed {
		c.Detail = tail(body, 512)
	}
	return c
}

// RunCommand runs the command in dir (no shell unless its argv names one) and checks its
// exit code, which is the figure (-1 when it could not run or was killed at its timeout).
// Its combined output's tail is kept in Detail. Name and Phase are left to the caller.
func RunCommand(ctx context.Context, spec *scenarios.CommandCheck, dir string) result.Check {
	c := result.Check{Kind: scenarios.CheckCommand, Op: "==", Unit: "exit code", Figure: -1}
	if spec == nil || len(spec.Run) == 0 || spec.Run[0] == "" {
		c.Skipped, c.Message = true, "command check has no command to run"
		return c
	}
	c.Threshold = float64(spec.ExitCode)
	timeout := spec.Timeout.Std()
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, spec.Run[0], spec.Run[1:]...)
	cmd.Dir = dir
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	c.Detail = tail(out.Bytes(), maxCommandOutput)
	name := strings.Join(spec.Run, " ")
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		c.Message = fmt.Sprintf("command %q did not finish within %s", name, timeout)
		return c
	case err == nil:
		c.Figure = 0
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		c.Figure = float64(exit.ExitCode())
	default:
		c.Message = fmt.Sprintf("command %q could not run: %v", name, err)
		return c
	}
	c.Passed = c.Figure == c.Threshold
	c.Message = fmt.Sprintf("command %q exited %s, want %d", name, num(c.Figure), spec.ExitCode)
	return c
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
