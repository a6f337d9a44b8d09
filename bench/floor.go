// Package bench holds what `faultline bench` measures besides the system's own start: the
// floors its figures are read against.
package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/docker"
)

// Floor is what this machine's Docker engine takes to start containers with nothing of a
// component in them: below it no change to the harness or the components can bring a
// containerised system's start.
type Floor struct {
	// N containers were started together, in All; One is one container started alone.
	N        int
	One, All time.Duration
	// RunID labels the containers and the network it made (docker.Leftovers lists any
	// that were left).
	RunID string
}

// String is the line `faultline bench startup --runtime docker` prints under its figures.
func (f Floor) String() string {
	return fmt.Sprintf("engine floor: %d bare containers start in %s (one alone in %s)",
		f.N, f.All.Round(10*time.Millisecond), f.One.Round(10*time.Millisecond))
}

// Above says how far d (a measured start) is above the floor of all N containers.
func (f Floor) Above(d time.Duration) string {
	return fmt.Sprintf("%s above the floor (%.2f×)", (d - f.All).Round(10*time.Millisecond), float64(d)/float64(f.All))
}

// floorTimeout bounds the whole measurement: the creations, both starts and the removal.
const floorTimeout = 2 * time.Minute

// EngineFloor measures the floor of starting n containers on the engine: bare containers
// of image (the file system the components run from; no published port, no mount, no
// file copied in), each running an idle process, on a fresh network of their own. Every
// container is created first; One is one of them started alone, All the other n started
// in parallel, from the first start asked to the last one returned (the engine's start
// and the inspection a runtime start includes, as for a component). Everything is removed
// before EngineFloor returns.
func EngineFloor(ctx context.Context, image string, n int) (Floor, error) {
	if n < 1 {
		return Floor{}, fmt.Errorf("measure engine floor: %d containers, want at least 1", n)
	}
	if image == "" {
		return Floor{}, errors.New("measure engine floor: no image")
	}
	ctx, cancel := context.WithTimeout(ctx, floorTimeout)
	defer cancel()
	rt, err := docker.New(ctx, docker.WithImage(image))
	if err != nil {
		return Floor{}, fmt.Errorf("measure engine floor: %w", err)
	}
	f, err := measureFloor(ctx, rt, n)
	f.RunID = rt.RunID()
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), floorTimeout)
	defer ccancel()
	if cerr := rt.Close(cctx); cerr != nil {
		// The engine may still hold a removed container's endpoint on the network for a
		// moment ("has active endpoints"): sweep again before giving up.
		for range 20 {
			time.Sleep(250 * time.Millisecond)
			if _, cerr = docker.Clean(cctx, rt.RunID()); cerr == nil {
				break
			}
		}
		if cerr != nil {
			err = errors.Join(err, fmt.Errorf("remove engine floor containers: %w", cerr))
		}
	}
	return f, err
}

func measureFloor(ctx context.Context, rt *docker.Runtime, n int) (Floor, error) {
	specs := make([]runtime.Spec, n+1)
	for i := range specs {
		specs[i] = bareSpec(rt.RunID(), i)
	}
	if err := each(specs, func(s runtime.Spec) error { return rt.Prepare(ctx, s) }); err != nil {
		return Floor{}, fmt.Errorf("measure engine floor: %w", err)
	}
	start := func(s runtime.Spec) error {
		_, err := rt.Start(ctx, s)
		return err
	}
	f := Floor{N: n, RunID: rt.RunID()}
	began := time.Now()
	if err := start(specs[0]); err != nil {
		return Floor{}, fmt.Errorf("measure engine floor: %w", err)
	}
	f.One = time.Since(began)
	began = time.Now()
	if err := each(specs[1:], start); err != nil {
		return Floor{}, fmt.Errorf("measure engine floor: %w", err)
	}
	f.All = time.Since(began)
	return f, nil
}

// each runs fn for every spec in parallel and joins the errors.
func each(specs []runtime.Spec, fn func(runtime.Spec) error) error {
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Go(func() { errs[i] = fn(s) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// bareSpec is the i-th floor container. Its process is the image's binary waiting idle:
// the reap command's listener, which has no engine socket here and so never removes
// anything; the container is removed long before the command's first wait ends.
func bareSpec(runID string, i int) runtime.Spec {
	return runtime.Spec{
		Name:    "bare-" + strconv.Itoa(i),
		Command: docker.BinaryPath,
		Args:    []string{"reap", "--run-id", runID, "--listen", "127.0.0.1:7474", "--grace", "1h"},
		Labels:  map[string]string{"faultline.kind": "engine-floor"},
	}
}
