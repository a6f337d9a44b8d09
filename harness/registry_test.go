package harness_test

import (
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/runtime/images"
)

// `faultline images push --registry R` then `run --runtime kubernetes --registry R`: the
// images the harness is given are the very references pushed to a real registry on
// loopback, and names left to the registry are filled in while named ones are kept.
func TestKubernetesImagesFromARegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the static binaries")
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	reg := u.Host + "/team/chaos"

	pushed, err := images.Push(t.Context(), reg, images.Recipes())
	require.NoError(t, err)
	require.Len(t, pushed, 2)

	tests := []struct {
		name          string
		in            harness.Kubernetes
		wantFaultline string
		wantToxiproxy string
	}{
		{"both from the registry", harness.Kubernetes{Registry: reg}, pushed[0].Ref, pushed[1].Ref},
		{"a trailing slash", harness.Kubernetes{Registry: reg + "/"}, pushed[0].Ref, pushed[1].Ref},
		{"an image named by hand is kept", harness.Kubernetes{Registry: reg, Image: "other.example/faultline:1"}, "other.example/faultline:1", pushed[1].Ref},
		{"no registry: as imported into the nodes", harness.Kubernetes{},
			"faultline.local/faultline:" + tag(t, pushed[0].Ref), "faultline.local/faultline-toxiproxy:" + tag(t, pushed[1].Ref)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := harness.KubernetesImages(t.Context(), tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.wantFaultline, got.Image)
			assert.Equal(t, tt.wantToxiproxy, got.Toxiproxy)
		})
	}
}

// tag is ref's tag: the binary's hash.
func tag(t *testing.T, ref string) string {
	t.Helper()
	for i := len(ref) - 1; i >= 0; i-- {
		if ref[i] == ':' {
			return ref[i+1:]
		}
	}
	t.Fatalf("%s has no tag", ref)
	return ""
}
