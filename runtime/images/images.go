// Package images makes Faultline's images — each one static Go binary FROM scratch — and
// pushes them to a registry. It needs no container engine: the binary is built with the go
// command and the image is written as OCI in Go, so a user whose cluster pulls from a
// registry (Kubernetes) gets the same images the Docker runtime builds for itself.
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Recipe is one of Faultline's images: which Go package becomes the binary, and where it
// sits in the image.
type Recipe struct {
	Repo    string   // repository name, e.g. "faultline"; the tag is the binary's hash
	Package string   // go package to build, from the module root
	Binary  string   // file name of the static binary under the module's bin/
	Path    string   // the binary's absolute path in the image, its entrypoint
	Cmd     []string // default arguments
}

// Where the binaries sit in the images, and the port of the Toxiproxy server's HTTP API.
const (
	FaultlinePath    = "/faultline"
	ToxiproxyPath    = "/toxiproxy"
	ToxiproxyAPIPort = 8474
)

// The images every runtime that runs containers needs: the faultline binary (every
// component of the reference system, the reaper) and the Toxiproxy server.
var (
	Faultline = Recipe{Repo: "faultline", Package: "./cmd/faultline", Binary: "faultline-static", Path: FaultlinePath}
	Toxiproxy = Recipe{Repo: "faultline-toxiproxy", Package: "github.com/Shopify/toxiproxy/v2/cmd/server",
		Binary: "toxiproxy-static", Path: ToxiproxyPath, Cmd: []string{"-host", "0.0.0.0", "-port", fmt.Sprint(ToxiproxyAPIPort)}}
)

// Recipes lists Faultline's images.
func Recipes() []Recipe { return []Recipe{Faultline, Toxiproxy} }

// Dirs are the empty directories every image holds: /data for volumes and /tmp for
// os.TempDir (FROM scratch has neither).
var Dirs = []string{"/tmp", "/data"}

// ModuleRoot asks the go command where the module is, so a build works from any directory
// inside the tree (tests run in their package directory).
func ModuleRoot(ctx context.Context, goTool string) (string, error) {
	out, err := exec.CommandContext(ctx, goTool, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("find module root: not inside a Go module (give the source tree's directory)")
	}
	return filepath.Dir(mod), nil
}

// Build builds r's binary statically (CGO_ENABLED=0: FROM scratch has no libc) into
// root/bin and returns its path and the content hash that tags its image.
//
// The go command writes its output in place, so the binary is built in a directory of its
// own and renamed over root/bin's: two commands building images from one tree at once (two
// suites, or two test packages) each see a whole binary, never one the other is
// half-way through writing.
func Build(ctx context.Context, goTool, root string, r Recipe, log io.Writer) (bin, sum string, err error) {
	if log == nil {
		log = io.Discard
	}
	bin = filepath.Join(root, "bin", r.Binary)
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", "", fmt.Errorf("build %s: %w", r.Package, err)
	}
	dir, err := os.MkdirTemp(filepath.Dir(bin), "."+r.Binary+"-")
	if err != nil {
		return "", "", fmt.Errorf("build %s: %w", r.Package, err)
	}
	defer os.RemoveAll(dir) // empty after the rename
	tmp := filepath.Join(dir, r.Binary)
	// The binary there already, linked in: the go command leaves an output whose build ID
	// is current as it is (no link of a binary of some 100 MB on every call), and it
	// replaces an outdated one by removing it and writing a new file, which leaves bin's.
	_ = os.Link(bin, tmp) // none yet, or no hard links here: a full build
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-o", tmp, r.Package)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, log)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("build %s: %w: %s", r.Package, err, strings.TrimSpace(buf.String()))
	}
	if sum, err = FileHash(tmp); err != nil {
		return "", "", err
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", "", fmt.Errorf("build %s: %w", r.Package, err)
	}
	return bin, sum, nil
}

// FileHash is the tag of an image made of the binary at path: the first 16 hex digits of
// its SHA-256, so an unchanged binary never makes a second image.
func FileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash binary: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Image is r's image made of the binary at bin: one layer with the binary and Dirs, the
// binary as entrypoint, /data as working directory, labels on its config. Its content
// depends on the binary only (no timestamps), so the same binary always has one digest.
func Image(r Recipe, bin string, labels map[string]string) (v1.Image, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("make image %s: %w", r.Repo, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range Dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o1777}); err != nil {
			return nil, fmt.Errorf("make image %s: %w", r.Repo, err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(r.Path, "/"), Mode: 0o755, Size: int64(len(data))}); err != nil {
		return nil, fmt.Errorf("make image %s: %w", r.Repo, err)
	}
	if _, err := tw.Write(data); err != nil {
		return nil, fmt.Errorf("make image %s: %w", r.Repo, err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("make image %s: %w", r.Repo, err)
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("make image %s: %w", r.Repo, err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("make image %s: %w", r.Repo, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("make image %s: %w", r.Repo, err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goruntime.GOARCH
	cf.Config.Entrypoint = []string{r.Path}
	cf.Config.Cmd = r.Cmd
	cf.Config.WorkingDir = "/data"
	cf.Config.Labels = labels
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("make image %s: %w", r.Repo, err)
	}
	return img, nil
}

// Pushed is one image in a registry.
type Pushed struct {
	Ref    string // repository:tag as pushed
	Digest string // the manifest's digest: Ref@Digest pins it
}

// PushOption configures Push.
type PushOption func(*pushConfig) error

type pushConfig struct {
	goTool, root string
	log          io.Writer
	nameOpts     []name.Option
	remoteOpts   []remote.Option
	labels       map[string]string
}

// WithModuleRoot builds from dir instead of the module the go command finds from the
// working directory.
func WithModuleRoot(dir string) PushOption {
	return func(c *pushConfig) error {
		if dir == "" {
			return nil
		}
		if st, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil || st.IsDir() {
			return fmt.Errorf("module root %s: no go.mod there", dir)
		}
		c.root = dir
		return nil
	}
}

// WithBuildLog receives the go command's output.
func WithBuildLog(w io.Writer) PushOption {
	return func(c *pushConfig) error { c.log = w; return nil }
}

// Insecure talks plain HTTP to the registry (one on a private network or loopback is
// reached over HTTP anyway).
func Insecure() PushOption {
	return func(c *pushConfig) error { c.nameOpts = append(c.nameOpts, name.Insecure); return nil }
}

// WithLabels puts labels on every image's config.
func WithLabels(l map[string]string) PushOption {
	return func(c *pushConfig) error { c.labels = l; return nil }
}

// WithRemote passes options to the registry client (credentials, transport).
func WithRemote(opts ...remote.Option) PushOption {
	return func(c *pushConfig) error { c.remoteOpts = append(c.remoteOpts, opts...); return nil }
}

// Push builds every recipe's binary and pushes its image to registry (HOST[:PORT][/PATH])
// as registry/<repo>:<binary hash>, the reference a cluster's pods name.
func Push(ctx context.Context, registry string, recipes []Recipe, opts ...PushOption) ([]Pushed, error) {
	cfg := pushConfig{goTool: "go", log: io.Discard}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("push images: %w", err)
		}
	}
	if err := CheckRegistry(registry, cfg.nameOpts...); err != nil {
		return nil, fmt.Errorf("push images: %w", err)
	}
	if cfg.root == "" {
		root, err := ModuleRoot(ctx, cfg.goTool)
		if err != nil {
			return nil, fmt.Errorf("push images: %w", err)
		}
		cfg.root = root
	}
	var out []Pushed
	for _, r := range recipes {
		bin, sum, err := Build(ctx, cfg.goTool, cfg.root, r, cfg.log)
		if err != nil {
			return out, fmt.Errorf("push images: %w", err)
		}
		img, err := Image(r, bin, cfg.labels)
		if err != nil {
			return out, fmt.Errorf("push images: %w", err)
		}
		p, err := PushImage(ctx, img, Ref(registry, r, sum), cfg.nameOpts, cfg.remoteOpts...)
		if err != nil {
			return out, fmt.Errorf("push images: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// CheckRegistry checks that registry is HOST[:PORT][/PATH], a place Push can push to and
// Ref can name images in (a trailing slash is ignored).
func CheckRegistry(registry string, opts ...name.Option) error {
	registry = strings.TrimSuffix(registry, "/")
	if _, err := name.NewRepository(registry+"/x", opts...); err != nil {
		return fmt.Errorf("registry %q is not HOST[:PORT][/PATH]: %w", registry, err)
	}
	return nil
}

// Ref is the reference of recipe r's image made of the binary whose hash is sum in
// registry (HOST[:PORT][/PATH]): registry/<repo>:<sum>, as Push tags it. It is the one
// naming of Faultline's images, so that a run naming its images from the same registry
// and source tree finds the very ones pushed.
func Ref(registry string, r Recipe, sum string) string {
	return strings.TrimSuffix(registry, "/") + "/" + r.Repo + ":" + sum
}

// PushImage writes img to ref.
func PushImage(ctx context.Context, img v1.Image, ref string, nameOpts []name.Option, opts ...remote.Option) (Pushed, error) {
	tag, err := name.NewTag(ref, nameOpts...)
	if err != nil {
		return Pushed{}, fmt.Errorf("push %s: %w", ref, err)
	}
	if err := remote.Write(tag, img, append([]remote.Option{remote.WithContext(ctx)}, opts...)...); err != nil {
		return Pushed{}, fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return Pushed{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return Pushed{Ref: tag.String(), Digest: d.String()}, nil
}
