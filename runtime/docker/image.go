package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// Image repositories; the tag is a content hash of the binary, so an unchanged binary
// never triggers a second image build.
const (
	ImageRepo          = "faultline"
	ToxiproxyImageRepo = "faultline-toxiproxy"
)

// ToxiproxyAPIPort is the port the Toxiproxy image's server listens on for its HTTP API.
const ToxiproxyAPIPort = 8474

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
	return buildScratchImage(ctx, imageRecipe{
		repo: ImageRepo, pkg: "./cmd/faultline", binary: "faultline-static", path: BinaryPath,
	}, opts)
}

// BuildToxiproxyImage builds the Toxiproxy server from the module's own dependency
// (github.com/Shopify/toxiproxy/v2/cmd/server) into a FROM scratch image tagged
// faultline-toxiproxy:<binary hash>; its server listens on 0.0.0.0:ToxiproxyAPIPort.
func BuildToxiproxyImage(ctx context.Context, opts ...BuildOption) (string, error) {
	return buildScratchImage(ctx, imageRecipe{
		repo: ToxiproxyImageRepo, pkg: "github.com/Shopify/toxiproxy/v2/cmd/server", binary: "toxiproxy-static",
		path: ToxiproxyPath, cmd: []string{"-host", "0.0.0.0", "-port", fmt.Sprint(ToxiproxyAPIPort)},
	}, opts)
}

type imageRecipe struct {
	repo   string   // image repository
	pkg    string   // go package to build
	binary string   // file name under bin/
	path   string   // where the binary goes in the image
	cmd    []string // default arguments
}

func buildScratchImage(ctx context.Context, r imageRecipe, opts []BuildOption) (string, error) {
	cfg := buildConfig{goTool: "go", log: io.Discard}
	for _, o := range opts {
		o(&cfg)
	}
	root := cfg.root
	if root == "" {
		var err error
		if root, err = moduleRoot(ctx, cfg.goTool); err != nil {
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

	bin := filepath.Join(root, "bin", r.binary)
	if err := goBuild(ctx, cfg, root, r.pkg, bin); err != nil {
		return "", err
	}
	sum, err := fileHash(bin)
	if err != nil {
		return "", err
	}
	tag := r.repo + ":" + sum
	if found, err := hasImage(ctx, p.Client(), tag); err != nil || found {
		if err == nil {
			rememberTag(key, tag)
		}
		return tag, err
	}

	archive, err := buildContext(bin, r)
	if err != nil {
		return "", err
	}
	if err := buildArchive(ctx, p, r.repo, sum, archive, cfg.log); err != nil {
		return "", err
	}
	rememberTag(key, tag)
	return tag, nil
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
func cacheKey(r imageRecipe, root string) string {
	id := selfID()
	if id == "" {
		return ""
	}
	h := sha256.Sum256([]byte(strings.Join([]string{id, r.repo, r.pkg, r.path, strings.Join(r.cmd, " "), root}, "\x00")))
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

// moduleRoot asks the go command where the module is, so BuildImage works from any
// directory inside the tree (tests run in their package directory).
func moduleRoot(ctx context.Context, goTool string) (string, error) {
	out, err := exec.CommandContext(ctx, goTool, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("find module root: not inside a Go module (use WithModuleRoot)")
	}
	return filepath.Dir(mod), nil
}

// goBuild builds a static binary: FROM scratch has no libc for a cgo binary to load.
func goBuild(ctx context.Context, cfg buildConfig, root, pkg, out string) error {
	cmd := exec.CommandContext(ctx, cfg.goTool, "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	goBuilds.Add(1)
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, cfg.log)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: %w: %s", pkg, err, strings.TrimSpace(buf.String()))
	}
	return nil
}

func fileHash(path string) (string, error) {
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

// dockerfile is the whole image: the binary, a data directory for volumes and a /tmp for
// os.TempDir. WORKDIR creates directories without needing a shell in the image; the
// LabelManaged label comes from the build options.
func dockerfile(r imageRecipe) string {
	var b strings.Builder
	b.WriteString("FROM scratch\n")
	fmt.Fprintf(&b, "COPY %s %s\n", r.binary, r.path)
	b.WriteString("WORKDIR /tmp\nWORKDIR /data\n")
	fmt.Fprintf(&b, "ENTRYPOINT [%q]\n", r.path)
	if len(r.cmd) > 0 {
		q := make([]string, len(r.cmd))
		for i, a := range r.cmd {
			q[i] = fmt.Sprintf("%q", a)
		}
		fmt.Fprintf(&b, "CMD [%s]\n", strings.Join(q, ", "))
	}
	return b.String()
}

// buildContext returns a tar with the Dockerfile and the binary, built in memory so that
// nothing but bin/ is written into the source tree.
func buildContext(bin string, r imageRecipe) ([]byte, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("read binary: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, f := range []struct {
		name string
		mode int64
		body []byte
	}{
		{"Dockerfile", 0o644, []byte(dockerfile(r))},
		{r.binary, 0o755, data},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), ModTime: now}); err != nil {
			return nil, fmt.Errorf("write build context: %w", err)
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, fmt.Errorf("write build context: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write build context: %w", err)
	}
	return buf.Bytes(), nil
}
