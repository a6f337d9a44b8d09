package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/harness"
)

func TestRunRuntimeFlags(t *testing.T) {
	tests := []struct {
		name, runtime, image string
		toxiproxy            string
		leaseTTL             time.Duration
		wantOpts             int
		wantErr              string
	}{
		{name: "the scenario decides", wantOpts: 0},
		{name: "an image for scenarios on docker", image: "faultline:abc", wantOpts: 1},
		{name: "local", runtime: "local", wantOpts: 1},
		{name: "an image is meaningless locally", runtime: "local", image: "faultline:abc", wantErr: "--image needs --runtime docker"},
		{name: "kubernetes with named images", runtime: "kubernetes", image: "reg.example/faultline:abc", toxiproxy: "reg.example/faultline-toxiproxy:def", wantOpts: 2},
		{name: "kubernetes with a lease ttl", runtime: "kubernetes", image: "reg.example/faultline:abc", toxiproxy: "reg.example/faultline-toxiproxy:def", leaseTTL: 15 * time.Second, wantOpts: 2},
		{name: "a lease ttl a Lease cannot hold", runtime: "kubernetes", image: "reg.example/faultline:abc", toxiproxy: "reg.example/faultline-toxiproxy:def", leaseTTL: 1500 * time.Millisecond, wantErr: "--kube-lease-ttl: lease ttl 1.5s: must be whole seconds, at least 3s"},
		{name: "unknown runtime", runtime: "nomad", wantErr: `--runtime "nomad": want local, docker or kubernetes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := runRuntimeFlags{runtime: tt.runtime, image: tt.image, kube: kubeFlags{toxiproxyImage: tt.toxiproxy, leaseTTL: tt.leaseTTL}}
			got, err := f.options(context.Background(), io.Discard)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Equal(t, 3, exitCode(err), "a usage error")
				return
			}
			require.NoError(t, err)
			assert.Len(t, got, tt.wantOpts)
		})
	}
}

// --registry names both images of a kubernetes run: refused on another runtime, beside an
// image named by hand, and when images push would refuse it, on every command taking it.
func TestRegistryFlagValidation(t *testing.T) {
	const reg = "reg.example:5000/chaos"
	tests := []struct {
		name, runtime, image, toxiproxy, registry string
		wantErr                                   string // "" accepts the flags
	}{
		{name: "a registry on kubernetes", runtime: "kubernetes", registry: reg},
		{name: "a registry with a trailing slash", runtime: "kubernetes", registry: reg + "/"},
		{name: "a registry host alone", runtime: "kubernetes", registry: "127.0.0.1:5000"},
		{name: "no registry", runtime: "kubernetes", image: "reg.example/faultline:abc"},
		{name: "with --image", runtime: "kubernetes", registry: reg, image: "reg.example/faultline:abc", wantErr: "--registry names both images: give it or --image and --toxiproxy-image, not both"},
		{name: "with --toxiproxy-image", runtime: "kubernetes", registry: reg, toxiproxy: "reg.example/faultline-toxiproxy:def", wantErr: "--registry names both images"},
		{name: "on docker", runtime: "docker", registry: reg, wantErr: "--registry needs --runtime kubernetes"},
		{name: "on the local runtime", runtime: "local", registry: reg, wantErr: "--registry needs --runtime kubernetes"},
		{name: "no runtime given (run)", runtime: "", registry: reg, wantErr: "--registry needs --runtime kubernetes"},
		{name: "malformed", runtime: "kubernetes", registry: "Not A Registry!", wantErr: `--registry: registry "Not A Registry!" is not HOST[:PORT][/PATH]`},
		{name: "a bad port", runtime: "kubernetes", registry: "reg.example:port/chaos", wantErr: "is not HOST[:PORT][/PATH]"},
	}
	for _, tt := range tests {
		kube := kubeFlags{toxiproxyImage: tt.toxiproxy, registry: tt.registry}
		check := func(t *testing.T, err error) {
			t.Helper()
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Equal(t, 3, exitCode(err), "a usage error")
		}
		// up, bench startup: runtimeFlags; run, suite, compare, demo: runRuntimeFlags.
		if tt.runtime != "" {
			t.Run("up/"+tt.name, func(t *testing.T) {
				f := runtimeFlags{runtime: tt.runtime, image: tt.image, kube: kube}
				check(t, f.validate())
			})
		}
		t.Run("run/"+tt.name, func(t *testing.T) {
			f := runRuntimeFlags{runtime: tt.runtime, image: tt.image, kube: kube}
			// Only the check: options would go on to build the images.
			check(t, f.kube.checkRegistry(f.runtime, f.image))
			if tt.wantErr != "" {
				_, err := f.options(context.Background(), io.Discard)
				check(t, err)
			}
		})
	}
}

// The flags hand the harness and the system the registry the images are named in.
func TestRegistryFlagReachesTheHarness(t *testing.T) {
	k := kubeFlags{kubeconfig: "kc", context: "ctx", registry: "reg.example:5000/chaos"}
	assert.Equal(t, harness.Kubernetes{Kubeconfig: "kc", Context: "ctx", Registry: "reg.example:5000/chaos"}, k.harness(""))
}

// Every command that takes the kubernetes flags takes --registry with them.
func TestRegistryFlagOnEveryKubernetesCommand(t *testing.T) {
	root := newRoot()
	var with []string
	for _, args := range [][]string{{"up"}, {"run"}, {"suite"}, {"compare"}, {"demo"}, {"console"}, {"bench", "startup"}, {"explore"}, {"soak"}} {
		cmd, _, err := root.Find(args)
		require.NoError(t, err, args)
		if cmd.Flags().Lookup("kubeconfig") == nil {
			continue
		}
		with = append(with, cmd.CommandPath())
		assert.NotNil(t, cmd.Flags().Lookup("registry"), "%s takes the kubernetes flags but not --registry", cmd.CommandPath())
	}
	assert.Equal(t, []string{"faultline up", "faultline run", "faultline suite", "faultline compare", "faultline demo", "faultline console", "faultline bench startup"}, with)
}
