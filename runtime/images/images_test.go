package images_test

import (
	"archive/tar"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/runtime/images"
)

// TestPushToARegistry pushes Faultline's images to a real OCI registry on loopback, pulls
// them back as a cluster's runtime would, and runs the binary that came out of the
// registry: what was pushed is the image the runtimes start, not just some bytes.
func TestPushToARegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the static binaries")
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	reg := u.Host + "/team/faultline"

	labels := map[string]string{"dev.faultline.managed": "true"}
	pushed, err := images.Push(t.Context(), reg, images.Recipes(), images.WithLabels(labels))
	require.NoError(t, err)
	require.Len(t, pushed, 2)

	for i, r := range images.Recipes() {
		p := pushed[i]
		assert.Regexp(t, `^`+u.Host+`/team/faultline/`+r.Repo+`:[0-9a-f]{16}$`, p.Ref)
		ref, err := name.ParseReference(p.Ref)
		require.NoError(t, err)
		img, err := remote.Image(ref, remote.WithContext(t.Context()))
		require.NoError(t, err)
		d, err := img.Digest()
		require.NoError(t, err)
		assert.Equal(t, p.Digest, d.String(), "the digest printed is the one the registry serves")

		cf, err := img.ConfigFile()
		require.NoError(t, err)
		assert.Equal(t, []string{r.Path}, cf.Config.Entrypoint)
		assert.Equal(t, r.Cmd, cf.Config.Cmd)
		assert.Equal(t, "linux", cf.OS)
		assert.Equal(t, labels, cf.Config.Labels)

		files := layerFiles(t, img)
		for _, dir := range images.Dirs {
			_, ok := files[dir[1:]+"/"]
			assert.True(t, ok, "%s has %s", p.Ref, dir)
		}
		bin := files[r.Path[1:]]
		require.NotEmpty(t, bin, "%s holds its binary at %s", p.Ref, r.Path)
		if r.Repo == images.Faultline.Repo {
			exe := filepath.Join(t.TempDir(), "faultline")
			require.NoError(t, os.WriteFile(exe, bin, 0o755))
			out, err := exec.Command(exe, "version").CombinedOutput()
			require.NoError(t, err, "%s", out)
			assert.Contains(t, string(out), "faultline")
		}
	}

	// Pushing again changes nothing: the same binary makes the same image.
	again, err := images.Push(t.Context(), reg, images.Recipes()[:1], images.WithLabels(labels))
	require.NoError(t, err)
	assert.Equal(t, pushed[0], again[0])
}

// layerFiles reads every layer of img into a map of path → content (empty for a directory).
func layerFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	require.NoError(t, err)
	files := map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		require.NoError(t, err)
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			files[h.Name] = b
		}
		require.NoError(t, rc.Close())
	}
	return files
}

func TestPushErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		registry string
		opts     []images.PushOption
		want     string
	}{
		{"not a registry", "Not A Registry!", nil, "is not HOST[:PORT][/PATH]"},
		{"not a module", "127.0.0.1:1/x", []images.PushOption{images.WithModuleRoot(dir)}, "no go.mod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := images.Push(context.Background(), tt.registry, images.Recipes(), tt.opts...)
			require.Error(t, err)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

// Ref is the one naming of Faultline's images in a registry: Push tags them so, and a run
// given the same registry names them so.
func TestRef(t *testing.T) {
	tests := []struct {
		registry string
		recipe   images.Recipe
		want     string
	}{
		{"reg.example:5000/chaos", images.Faultline, "reg.example:5000/chaos/faultline:0123456789abcdef"},
		{"reg.example:5000/chaos/", images.Toxiproxy, "reg.example:5000/chaos/faultline-toxiproxy:0123456789abcdef"},
		{"127.0.0.1:5000", images.Faultline, "127.0.0.1:5000/faultline:0123456789abcdef"},
		{"faultline.local", images.Toxiproxy, "faultline.local/faultline-toxiproxy:0123456789abcdef"},
	}
	for _, tt := range tests {
		t.Run(tt.registry+" "+tt.recipe.Repo, func(t *testing.T) {
			got := images.Ref(tt.registry, tt.recipe, "0123456789abcdef")
			assert.Equal(t, tt.want, got)
			_, err := name.NewTag(got)
			assert.NoError(t, err, "a reference a registry client parses")
		})
	}
}

// TestBuildNeverShowsAHalfWrittenBinary builds with a go tool that writes its output in two
// halves, a pause between them, as the go command writes in place: a reader of the image's
// binary during the build (another command building from the same tree) must see the
// binary before or the one after, whole, never the first half.
func TestBuildNeverShowsAHalfWrittenBinary(t *testing.T) {
	root := t.TempDir()
	tool := filepath.Join(root, "fakego")
	// build -trimpath -o OUT PKG: OUT is $4. Like the go command, it removes an outdated
	// output before writing the new one.
	script := "#!/bin/sh\nrm -f \"$4\"\nprintf first-half- > \"$4\"\nsleep 0.3\nprintf second-half >> \"$4\"\n"
	require.NoError(t, os.WriteFile(tool, []byte(script), 0o755))
	bin := filepath.Join(root, "bin", images.Faultline.Binary)
	require.NoError(t, os.MkdirAll(filepath.Dir(bin), 0o755))
	const before, after = "the binary before", "first-half-second-half"
	require.NoError(t, os.WriteFile(bin, []byte(before), 0o755))

	done := make(chan struct{})
	var got, sum string
	var err error
	go func() {
		defer close(done)
		got, sum, err = images.Build(t.Context(), tool, root, images.Faultline, nil)
	}()
	seen := map[string]bool{}
	for reading := true; reading; {
		select {
		case <-done:
			reading = false
		case <-time.After(5 * time.Millisecond):
		}
		b, rerr := os.ReadFile(bin)
		require.NoError(t, rerr, "the binary is always there")
		seen[string(b)] = true
	}
	require.NoError(t, err)
	assert.Equal(t, bin, got)
	for s := range seen {
		assert.Contains(t, []string{before, after}, s, "a reader saw a binary no build finished")
	}
	b, err := os.ReadFile(bin)
	require.NoError(t, err)
	assert.Equal(t, after, string(b))
	want, err := images.FileHash(bin)
	require.NoError(t, err)
	assert.Equal(t, want, sum, "the tag is the hash of the binary built")
	entries, err := os.ReadDir(filepath.Dir(bin))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "nothing of the build is left beside the binary")
}

// TestBuildKeepsAnUnchangedBinary: built in a directory of its own, the binary was linked
// again on every call (the go command skips only an output already up to date); the one
// there is handed to the go command, which leaves it as it is.
func TestBuildKeepsAnUnchangedBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a static binary")
	}
	root, err := images.ModuleRoot(t.Context(), "go")
	require.NoError(t, err)
	bin, sum, err := images.Build(t.Context(), "go", root, images.Toxiproxy, nil)
	require.NoError(t, err)
	before, err := os.Stat(bin)
	require.NoError(t, err)
	_, again, err := images.Build(t.Context(), "go", root, images.Toxiproxy, nil)
	require.NoError(t, err)
	after, err := os.Stat(bin)
	require.NoError(t, err)
	assert.Equal(t, sum, again)
	assert.True(t, os.SameFile(before, after), "an up-to-date binary was written again")
}
