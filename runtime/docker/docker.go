// Package docker runs components as containers through testcontainers-go: the same
// faultline binary as the local runtime, built statically into a FROM scratch image (no
// image can be pulled on the machines this runs on), one private bridge network per run,
// crash = SIGKILL, pause = docker pause, partition = network disconnect.
//
// Ryuk, testcontainers' reaper, cannot be pulled either, so this package disables it and
// labels every container, network, volume and image it creates with LabelManaged (and
// containers, networks and volumes with LabelRun); Runtime.Close removes what one run
// created and Clean removes whatever a killed harness left behind.
package docker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"

	"github.com/faultline-dev/faultline/runtime/images"
)

// Labels this package puts on what it creates; Clean selects by them.
const (
	// LabelManaged marks every container, network, volume and image of faultline.
	LabelManaged = "dev.faultline.managed"
	// LabelRun carries the run id on containers, networks and volumes.
	LabelRun = "dev.faultline.run"
	// LabelName carries the instance name (runtime.Spec.Name) on containers.
	LabelName = "dev.faultline.name"
)

// BinaryPath is where the faultline binary sits in the image built by BuildImage: the
// runtime.Spec.Command of a faultline component in a container.
const BinaryPath = images.FaultlinePath

// ToxiproxyPath is where the Toxiproxy server sits in the image built by
// BuildToxiproxyImage.
const ToxiproxyPath = images.ToxiproxyPath

// ryukEnv is read once by testcontainers, on first use, so it must be set before any
// provider exists; init is the only point that precedes every caller.
const ryukEnv = "TESTCONTAINERS_RYUK_DISABLED"

func init() {
	// The reaper image cannot be pulled here, and this package removes what it creates
	// itself; leaving Ryuk enabled would make every container start fail.
	_ = os.Setenv(ryukEnv, "true")
	// testcontainers prints a connection banner through its default logger whenever a
	// client connects; a CLI's output must stay the CLI's. Loggers passed with
	// WithLogger still receive everything.
	tclog.SetDefault(tclog.NewNoopLogger())
}

// Available reports why no Docker engine can be used, or nil when one answers. Tests call
// it first and skip with one line when it fails.
func Available(ctx context.Context) error {
	p, err := newProvider(nil)
	if err != nil {
		return err
	}
	defer func() { _ = p.Close() }()
	return ping(ctx, p.Client())
}

// ping is Available's check on an already created client: creating a client does not
// contact the engine, a ping does.
func ping(ctx context.Context, cli client.APIClient) error {
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return fmt.Errorf("ping docker engine: %w", err)
	}
	return nil
}

// providerMu serialises provider creation: testcontainers reads its configuration and
// docker host once, and concurrent first reads race inside the library.
var providerMu sync.Mutex

// newProvider returns a Docker provider that logs through log (nil discards).
func newProvider(log *slog.Logger) (*testcontainers.DockerProvider, error) {
	providerMu.Lock()
	defer providerMu.Unlock()
	p, err := testcontainers.NewDockerProvider(testcontainers.WithLogger(tcLogger(log)))
	if err != nil {
		return nil, fmt.Errorf("connect docker engine: %w", err)
	}
	return p, nil
}

// tcLogger adapts slog to testcontainers' Printf logger; testcontainers' own default
// prints emoji banners on stderr, which would drown a CLI's output.
func tcLogger(log *slog.Logger) tclog.Logger {
	if log == nil {
		return tclog.NewNoopLogger()
	}
	return slogPrintf{log}
}

type slogPrintf struct{ log *slog.Logger }

func (s slogPrintf) Printf(format string, v ...any) {
	s.log.Debug(fmt.Sprintf(format, v...), "component", "testcontainers")
}

// managedLabels returns the labels every run resource carries.
func managedLabels(runID string) map[string]string {
	l := map[string]string{LabelManaged: "true"}
	if runID != "" {
		l[LabelRun] = runID
	}
	return l
}

// labelFilter selects resources of one run, or of every run when runID is empty.
func labelFilter(runID string) client.Filters {
	f := make(client.Filters).Add("label", LabelManaged+"=true")
	if runID != "" {
		f.Add("label", LabelRun+"="+runID)
	}
	return f
}
