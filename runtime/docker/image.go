package docker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"github.com/faultline-dev/faultline/runtime/images"
)

// Image repositories; the tag is a content hash of the binary, so an unchanged binary
// never triggers a second image build.
var (
	ImageRepo          = images.Faultline.Repo
	ToxiproxyImageRepo = images.Toxiproxy.Repo
)

// ToxiproxyAPIPort is the port the Toxiproxy image's server listens on for its HTTP API.
const ToxiproxyAPIPort = images.ToxiproxyAPIPort

// BuildOption configures BuildImage and BuildToxiproxyImage.
type BuildOption func(*buildConfig)

type buildConfig struct {
	root   string
	goTool string
	log    io.Writer
}

// WithModuleRoot builds from dir instead of the module that `go env GOMOD` finds from the
// working directory (a CLI run outside the source tree needs it).
func WithModuleRoot(dir string) BuildOption {
	return func(c *buildConfig) {
		if dir != "" {
			c.root = dir
		}
	}
}

// WithGoTool uses path as the go command instead of the one on PATH.
func WithGoTool(path string) BuildOption {
	return func(c *buildConfig) {
		if path != "" {
			c.goTool = path
		}
	}
}

// WithBuildLog receives the output of go build and of the image build.
func WithBuildLog(w io.Writer) BuildOption {
	return func(c *buildConfig) {
		if w != nil {
			c.log = w
		}
	}
}

// BuildImage builds bin/faultline-static (CGO_ENABLED=0, -trimpath) from the module root
// and an image FROM scratch holding only that binary at BinaryPath, plus empty /data and
// /tmp, tagged faultline:<binary hash> and labelled LabelManaged. When an image with that
// tag exists, it is reused without building. When the running binary is the faultline
// command and made the image before (for the same module root), the image is only looked
// up (docker image inspect): no go build, no relink.
func BuildImage(ctx context.Context, opts ...BuildOption) (string, error) {
	return buildScratchImage(ctx, images.Faultline, opts)
}

// BuildToxiproxyImage builds the Toxiproxy server from the module's own dependency
// (github.com/Shopify/toxiproxy/v2/cmd/server) into a FROM scratch image tagged
// faultline-toxiproxy:<binary hash>; its server listens on 0.0.0.0:ToxiproxyAPIPort.
func BuildToxiproxyImage(ctx context.Context, opts ...BuildOption) (string, error) {
	return buildScratchImage(ctx, images.Toxiproxy, opts)
}

func buildScratchImage(ctx context.Context, r images.Recipe, opts []BuildOption) (string, error) {
	cfg := buildConfig{goTool: "go", log: io.Discard}
	for _, o := range opts {
		o(&cfg)
	}
	root := cfg.root
	if root == "" {
		var err error
		if root, err = images.ModuleRoot(ctx, cfg.goTool); err != nil {
			return "", err
		}
	}
	p, err := newProvider(nil)
	if err != nil {
		return "", err
	}
	defer func() { _ = p.Close() }()

	// The image of the running binary, when it was made before: no go build at all (an
	// up-to-date go build still hashes every source file: a second or two per start).
	key := cacheKey(r, root)
	if tag := cachedTag(key); tag != "" {
		if found, err := hasImage(ctx, p.Client(), tag); err == nil && found {
			return tag, nil
		}
	}

	goBuilds.Add(1)
	bin, sum, err := images.Build(ctx, cfg.goTool, root, r, cfg.log)
	if err != nil {
		return "", err
	}
	tag := r.Repo + ":" + sum
	if found, err := hasImage(ctx, p.Client(), tag); err != nil || found {
		if err == nil {
			rememberTag(key, tag)
		}
		return tag, err
	}

	// The same OCI image `faultline images push` sends to a registry, loaded into the
	// engine: one definition of each image, and no build step in the engine.
	img, err := images.Image(r, bin, managedLabels(""))
	if err != nil {
		return "", err
	}
	if err := loadImage(ctx, p.Client(), img, tag); err != nil {
		return "", err
	}
	rememberTag(key, tag)
	return tag, nil
}

// loadImage loads img into the engine as tag (docker load of an archive streamed from img).
func loadImage(ctx context.Context, cli client.APIClient, img v1.Image, tag string) error {
	imageBuilds.Add(1)
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("load image %s: %w", tag, err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarball.Write(ref, img, pw)) }()
	res, err := cli.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	if err != nil {
		_ = pr.CloseWithError(err)
		return fmt.Errorf("load image %s: %w", tag, err)
	}
	defer res.Close()
	// The engine reports a failed load in the stream, not as an error.
	out, err := io.ReadAll(res)
	_ = pr.Close()
	if err != nil {
		return fmt.Errorf("load image %s: %w", tag, err)
	}
	if bytes.Contains(out, []byte(`"error"`)) || bytes.Contains(out, []byte(`"errorDetail"`)) {
		return fmt.Errorf("load image %s: %s", tag, bytes.TrimSpace(out))
	}
	return nil
}

// goBuilds and imageBuilds count the go builds and image builds of this process, so that a
// test can show that a start with the image in place performs neither.
var goBuilds, imageBuilds atomic.Int64

// cliPackage is the import path of the faultline command: only its binary vouches for the
// source its images are built from (see selfID).
const cliPackage = "github.com/faultline-dev/faultline/cmd/faultline"

// selfID identifies the running binary by its Go build ID, which the go command derives
// from the binary's content, or returns "" when the binary is not the faultline command.
// A test binary of some package does not contain cmd/faultline, so a change there would
// not change its id: it always asks go build, as before. A variable so that a test can
// stand in for the command.
var selfID = func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Path != cliPackage {
		return ""
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	id, err := goBuildID(exe)
	if err != nil {
		return ""
	}
	return id
}

// imageCacheDir holds one file per (binary, recipe, module root) naming the image tag made
// for it; a variable so that a test can start from an empty cache.
var imageCacheDir = func() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "faultline", "images"), nil
}

// cacheKey names what the image of r is made from: the running faultline binary (whose
// build the source tree at root produced, or a later one: the image then matches the
// harness that runs it) and the recipe; "" when the running binary cannot vouch for it.
func cacheKey(r images.Recipe, root string) string {
	id := selfID()
	if id == "" {
		return ""
	}
	h := sha256.Sum256([]byte(strings.Join([]string{id, r.Repo, r.Package, r.Path, strings.Join(r.Cmd, " "), root}, "\x00")))
	return hex.EncodeToString(h[:16])
}

// cachedTag returns the tag remembered for key, "" when none.
func cachedTag(key string) string {
	if key == "" {
		return ""
	}
	dir, err := imageCacheDir()
	if err != nil {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(dir, key))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// rememberTag records tag for key; a failure only costs the next start a go build.
func rememberTag(key, tag string) {
	if key == "" {
		return
	}
	dir, err := imageCacheDir()
	if err != nil {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	// Write then rename: two starts at once never read half a tag.
	tmp, err := os.CreateTemp(dir, key+".*")
	if err != nil {
		return
	}
	_, werr := tmp.WriteString(tag + "\n")
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), filepath.Join(dir, key)) != nil {
		_ = os.Remove(tmp.Name())
	}
}

// goBuildID reads the Go build ID note of an ELF executable (what `go tool buildid`
// prints) without reading the rest of the file.
func goBuildID(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("read build id: %w", err)
	}
	defer f.Close()
	sec := f.Section(".note.go.buildid")
	if sec == nil {
		return "", errors.New("read build id: no .note.go.buildid section")
	}
	b, err := sec.Data()
	if err != nil {
		return "", fmt.Errorf("read build id: %w", err)
	}
	// An ELF note: name size, descriptor size, type, the name "Go\x00\x00", the id.
	if len(b) < 16 {
		return "", errors.New("read build id: short note")
	}
	nameSize := f.ByteOrder.Uint32(b[0:4])
	descSize := f.ByteOrder.Uint32(b[4:8])
	start := 12 + (nameSize+3)&^3
	if nameSize != 4 || string(b[12:14]) != "Go" || uint64(start)+uint64(descSize) > uint64(len(b)) {
		return "", errors.New("read build id: not a Go build id note")
	}
	id := string(b[start : start+descSize])
	if id == "" {
		return "", errors.New("read build id: empty")
	}
	return id, nil
}

// hasImage reports whether the engine holds the image ref.
func hasImage(ctx context.Context, cli client.APIClient, ref string) (bool, error) {
	found, err := cli.ImageList(ctx, client.ImageListOptions{
		Filters: make(client.Filters).Add("reference", ref),
	})
	if err != nil {
		return false, fmt.Errorf("list images: %w", err)
	}
	return len(found.Items) > 0, nil
}

// buildArchive builds repo:tag from an in-memory build context, labelled LabelManaged so
// that `faultline clean --docker --images` finds it, keeping no intermediate container.
func buildArchive(ctx context.Context, p *testcontainers.DockerProvider, repo, tag string, archive []byte, log io.Writer) error {
	imageBuilds.Add(1)
	_, err := p.BuildImage(ctx, &testcontainers.ContainerRequest{FromDockerfile: testcontainers.FromDockerfile{
		ContextArchive: bytes.NewReader(archive),
		Repo:           repo,
		Tag:            tag,
		KeepImage:      true,
		BuildLogWriter: log,
		BuildOptionsModifier: func(o *client.ImageBuildOptions) {
			o.Labels = managedLabels("")
			o.Remove = true
			o.ForceRemove = true
		},
	}})
	if err != nil {
		return fmt.Errorf("build image %s:%s: %w", repo, tag, err)
	}
	return nil
}
