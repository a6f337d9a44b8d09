package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// HostImageRepo is the repository of the images BuildHostImage makes; their tag is a hash
// of the content, so an unchanged set of host files is found instead of rebuilt.
const HostImageRepo = "faultline-host"

// hostImageFormat is hashed into every tag: when what this file adds to an image (the
// account files, the layout) changes, an image an older version built must not be reused.
const hostImageFormat = "faultline-host/1"

// hostImagePath is the PATH of the image: callers name absolute commands, but software
// that runs helpers by name (a shell-less exec of "nginx") finds them where Debian put them.
const hostImagePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Account and name-service files of every host image. Daemons started as root (nginx)
// switch their workers to nobody/nogroup and fail when those names do not resolve; the
// explicit nsswitch.conf keeps glibc on the "files" service, which is built into libc,
// instead of a default that may name a module the image does not hold.
const (
	hostPasswd   = "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	hostGroup    = "root:x:0:\nnogroup:x:65534:\n"
	hostNSSwitch = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
)

// HostImage describes an image made FROM scratch of executables installed on the host.
type HostImage struct {
	// Binaries are absolute paths of host executables; each is copied to the same path in
	// the image together with every shared library it loads (as ldd lists them, the
	// dynamic loader included), symlinks resolved to their content at the path named.
	Binaries []string
	// Files are extra host files or directories (absolute paths) copied to the same path
	// (e.g. /etc/mime.types, /usr/share/...); directories recursively.
	Files []string
	// Dirs are empty directories the software expects to exist (e.g. /var/lib/nginx, /run).
	Dirs []string
}

// Validate reports every problem with h at once, so a user fixes a configuration in one
// go: paths that are not absolute, host files that are missing, binaries that are not
// executable regular files, and an image without any binary.
func (h HostImage) Validate() []error {
	var errs []error
	if len(h.Binaries) == 0 {
		errs = append(errs, errors.New("binaries is empty"))
	}
	for i, b := range h.Binaries {
		what := fmt.Sprintf("binaries[%d] %q", i, b)
		if !filepath.IsAbs(b) {
			errs = append(errs, fmt.Errorf("%s is not an absolute path", what))
			continue
		}
		info, err := statHost(what, b)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !info.Mode().IsRegular():
			errs = append(errs, fmt.Errorf("%s is not a regular file", what))
		case info.Mode().Perm()&0o111 == 0:
			errs = append(errs, fmt.Errorf("%s is not executable", what))
		}
	}
	for i, f := range h.Files {
		what := fmt.Sprintf("files[%d] %q", i, f)
		if !filepath.IsAbs(f) {
			errs = append(errs, fmt.Errorf("%s is not an absolute path", what))
			continue
		}
		if filepath.Clean(f) == "/" {
			// Copying the whole host is never what a user means, and would not fit in memory.
			errs = append(errs, fmt.Errorf("%s is the root directory", what))
			continue
		}
		info, err := statHost(what, f)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !info.Mode().IsRegular() && !info.IsDir():
			errs = append(errs, fmt.Errorf("%s is neither a regular file nor a directory", what))
		}
	}
	for i, d := range h.Dirs {
		if !filepath.IsAbs(d) {
			errs = append(errs, fmt.Errorf("dirs[%d] %q is not an absolute path", i, d))
		}
	}
	return errs
}

// statHost follows symlinks, as the copy does, and words the common failure plainly.
func statHost(what, path string) (fs.FileInfo, error) {
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s does not exist", what)
	case err != nil:
		return nil, fmt.Errorf("%s cannot be read: %w", what, err)
	}
	return info, nil
}

// BuildHostImage builds (or finds: the tag is a hash of every file's path, mode and
// content plus the dirs, so an unchanged set is never rebuilt) the image
// "faultline-host:<hash>", labelled LabelManaged like the other images, and returns its tag.
//
// Besides what h names, the image holds /etc/passwd (root and nobody), /etc/group (root
// and nogroup), /etc/nsswitch.conf and /tmp (mode 1777); a file in h.Files at one of those
// paths replaces the default. It has PATH set and no ENTRYPOINT or CMD: the caller's
// runtime.Spec.Command is the entrypoint. Of the options only WithBuildLog applies.
// Symlinks inside a directory of Files are copied as their content; sockets, devices,
// pipes and dangling links are skipped (and named in the build log).
//
// ldd lists the libraries, which for some binaries means running the dynamic loader on
// them: name only executables you trust, as you would when running them.
func BuildHostImage(ctx context.Context, h HostImage, opts ...BuildOption) (string, error) {
	if errs := h.Validate(); len(errs) > 0 {
		return "", fmt.Errorf("validate host image: %w", errors.Join(errs...))
	}
	cfg := buildConfig{log: io.Discard}
	for _, o := range opts {
		o(&cfg)
	}
	tree, err := collectHostTree(ctx, h, cfg.log)
	if err != nil {
		return "", err
	}
	sum, err := tree.digest(nil)
	if err != nil {
		return "", err
	}

	p, err := newProvider(nil)
	if err != nil {
		return "", err
	}
	defer func() { _ = p.Close() }()
	tag := HostImageRepo + ":" + sum
	if found, err := hasImage(ctx, p.Client(), tag); err != nil || found {
		return tag, err
	}

	archive, sum, err := hostBuildContext(tree)
	if err != nil {
		return "", err
	}
	// The context is hashed again as it is written: a host file that changed since the
	// lookup gets the tag of what the image really holds.
	tag = HostImageRepo + ":" + sum
	if err := buildArchive(ctx, p, HostImageRepo, sum, archive, cfg.log); err != nil {
		return "", err
	}
	return tag, nil
}

// hostEntry is one path of the image.
type hostEntry struct {
	dir  bool
	mode int64 // tar mode: permissions plus setuid, setgid and sticky bits
	// generated holds content made here (passwd); nil means the host file at the same path.
	generated []byte
	// weak marks defaults and parent directories nobody asked for: an explicit entry of the
	// same kind replaces them.
	weak bool
	// origin names what put the entry there, for conflict messages.
	origin string
}

// hostTree maps absolute, clean image paths to their entries.
type hostTree map[string]*hostEntry

// collectHostTree resolves h into the full list of image paths: binaries, the libraries
// ldd lists for them, Files walked recursively, Dirs, the defaults and every parent.
func collectHostTree(ctx context.Context, h HostImage, log io.Writer) (hostTree, error) {
	t := hostTree{}
	var errs []error
	for path, body := range map[string]string{
		"/etc/passwd": hostPasswd, "/etc/group": hostGroup, "/etc/nsswitch.conf": hostNSSwitch,
	} {
		t[path] = &hostEntry{mode: 0o644, generated: []byte(body), weak: true, origin: "default"}
	}
	t["/tmp"] = &hostEntry{dir: true, mode: 0o1777, weak: true, origin: "default"}

	for _, b := range h.Binaries {
		b = filepath.Clean(b)
		if err := t.addHostFile(b, "binary "+b); err != nil {
			errs = append(errs, err)
		}
		libs, err := lddLibraries(ctx, b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, lib := range libs {
			if err := t.addHostFile(lib, "library "+lib+" of "+b); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, f := range h.Files {
		f = filepath.Clean(f)
		if err := t.addHostPath(f, "file "+f, nil, log); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range h.Dirs {
		d = filepath.Clean(d)
		if d == "/" {
			continue
		}
		// Weak: a directory that is already there (/tmp with its sticky bit, one copied
		// from Files) keeps its mode; Dirs only promises that it exists.
		if err := t.add(d, &hostEntry{dir: true, mode: 0o755, weak: true, origin: "dir " + d}); err != nil {
			errs = append(errs, err)
		}
	}
	if err := t.addParents(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("collect host files: %w", err)
	}
	return t, nil
}

// add puts e at path unless something else already claims it.
func (t hostTree) add(path string, e *hostEntry) error {
	old, ok := t[path]
	switch {
	case !ok:
		t[path] = e
	case old.dir != e.dir:
		return fmt.Errorf("%s: %s wants a %s where %s put a %s", path, e.origin, kind(e.dir), old.origin, kind(old.dir))
	case old.weak && !e.weak:
		t[path] = e
	}
	// The same host path named twice (a library two binaries load) is one entry.
	return nil
}

func kind(dir bool) string {
	if dir {
		return "directory"
	}
	return "file"
}

// addHostFile adds a regular host file; Stat follows symlinks, so the image gets the
// content (and mode) of the target at the path named.
func (t hostTree) addHostFile(path, origin string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat %s: %w", origin, err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("stat %s: not a regular file", origin)
	}
	return t.add(path, &hostEntry{mode: tarMode(info.Mode()), origin: origin})
}

// addHostPath adds a file, or a directory and everything below it. ancestors holds the
// resolved directories being walked, so that a symlink back up the tree ends the walk
// instead of looping.
func (t hostTree) addHostPath(path, origin string, ancestors []string, log io.Writer) error {
	info, err := os.Stat(path)
	if err != nil {
		if len(ancestors) > 0 {
			fmt.Fprintf(log, "host image: skip %s: %v\n", path, err)
			return nil
		}
		return fmt.Errorf("stat %s: %w", origin, err)
	}
	switch {
	case info.Mode().IsRegular():
		return t.add(path, &hostEntry{mode: tarMode(info.Mode()), origin: origin})
	case !info.IsDir():
		if len(ancestors) > 0 {
			fmt.Fprintf(log, "host image: skip %s: %s\n", path, info.Mode().Type())
			return nil
		}
		return fmt.Errorf("stat %s: neither a regular file nor a directory", origin)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", path, err)
	}
	if slices.Contains(ancestors, real) {
		fmt.Fprintf(log, "host image: skip %s: symlink loop to %s\n", path, real)
		return nil
	}
	if err := t.add(path, &hostEntry{dir: true, mode: tarMode(info.Mode()), origin: origin}); err != nil {
		return err
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("read directory %s: %w", path, err)
	}
	chain := append(slices.Clone(ancestors), real)
	var errs []error
	for _, de := range entries {
		if err := t.addHostPath(filepath.Join(path, de.Name()), origin, chain, log); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// addParents creates every missing parent directory: the tar then lists each directory
// before its content with a known mode, instead of leaving modes to the extractor.
func (t hostTree) addParents() error {
	var errs []error
	for _, path := range slices.Sorted(maps.Keys(t)) {
		for dir := filepath.Dir(path); dir != "/"; dir = filepath.Dir(dir) {
			e, ok := t[dir]
			switch {
			case !ok:
				t[dir] = &hostEntry{dir: true, mode: 0o755, weak: true, origin: "parent of " + path}
			case !e.dir:
				errs = append(errs, fmt.Errorf("%s: %s needs a directory where %s put a file", dir, t[path].origin, e.origin))
			}
		}
	}
	return errors.Join(errs...)
}

// tarMode keeps the permission and special bits, which tar headers carry as in stat(2).
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// digest hashes every entry in path order (kind, path, mode, content) and hands each to
// visit, when set, with the very bytes it hashed.
func (t hostTree) digest(visit func(path string, e *hostEntry, body []byte) error) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", hostImageFormat)
	for _, path := range slices.Sorted(maps.Keys(t)) {
		e := t[path]
		var body []byte
		if !e.dir {
			body = e.generated
			if body == nil {
				var err error
				if body, err = os.ReadFile(path); err != nil {
					return "", fmt.Errorf("read host file: %w", err)
				}
			}
		}
		fmt.Fprintf(h, "%s %q %o %d\n", kind(e.dir), path, e.mode, len(body))
		h.Write(body)
		if visit != nil {
			if err := visit(path, e, body); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// hostDockerfile adds the file tree as one layer. ADD of a local tar extracts it with the
// modes and directory entries of its headers (/tmp keeps its sticky bit), which COPY of a
// context directory would not promise; no shell is needed, as FROM scratch has none.
const hostDockerfile = "FROM scratch\nADD rootfs.tar /\nENV PATH=" + hostImagePath + "\n"

// hostBuildContext returns, in memory like buildContext, a tar of the Dockerfile and of
// rootfs.tar holding the tree, and the hash of what it wrote.
func hostBuildContext(t hostTree) ([]byte, string, error) {
	var rootfs bytes.Buffer
	tw := tar.NewWriter(&rootfs)
	now := time.Now()
	sum, err := t.digest(func(path string, e *hostEntry, body []byte) error {
		hdr := &tar.Header{Name: strings.TrimPrefix(path, "/"), Mode: e.mode, ModTime: now, Typeflag: tar.TypeReg, Size: int64(len(body))}
		if e.dir {
			hdr.Name += "/"
			hdr.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write image files: %w", err)
		}
		if _, err := tw.Write(body); err != nil {
			return fmt.Errorf("write image files: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if err := tw.Close(); err != nil {
		return nil, "", fmt.Errorf("write image files: %w", err)
	}

	var buf bytes.Buffer
	tw = tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		body []byte
	}{
		{"Dockerfile", []byte(hostDockerfile)},
		{"rootfs.tar", rootfs.Bytes()},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), ModTime: now}); err != nil {
			return nil, "", fmt.Errorf("write build context: %w", err)
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, "", fmt.Errorf("write build context: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", fmt.Errorf("write build context: %w", err)
	}
	return buf.Bytes(), sum, nil
}

// lddLibraries runs ldd on bin and returns the files it loads, the dynamic loader
// included; a static binary has none.
func lddLibraries(ctx context.Context, bin string) ([]string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ldd", bin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if errors.Is(runErr, exec.ErrNotFound) {
		return nil, fmt.Errorf("list libraries of %s: %w (ldd comes with Debian's libc-bin)", bin, runErr)
	}
	// glibc's ldd says "not a dynamic executable" on stderr and exits 1 for a static
	// binary: that is an answer, not a failure.
	libs, static, err := parseLDD(stdout.String() + "\n" + stderr.String())
	if err != nil {
		return nil, fmt.Errorf("list libraries of %s: %w", bin, err)
	}
	if runErr != nil && !static {
		return nil, fmt.Errorf("list libraries of %s: %w: %s", bin, runErr, strings.TrimSpace(stderr.String()))
	}
	return libs, nil
}

// parseLDD reads ldd's output. Lines are "name => /path (0xaddr)" for a library found by
// name, "/path (0xaddr)" for the loader, "linux-vdso.so.1 (0xaddr)" for the kernel's vDSO
// (no file: skipped), and "statically linked" or "not a dynamic executable" for a binary
// that loads nothing. "name => not found" is an error: the image would not start.
func parseLDD(out string) (libs []string, static bool, err error) {
	var missing []string
	seen := map[string]bool{}
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if strings.Contains(line, "statically linked") || strings.Contains(line, "not a dynamic executable") {
			static = true
			continue
		}
		path := line
		if name, target, ok := strings.Cut(line, "=>"); ok {
			target = strings.TrimSpace(target)
			if strings.HasPrefix(target, "not found") {
				missing = append(missing, strings.TrimSpace(name))
				continue
			}
			path = target
		}
		if !strings.HasPrefix(path, "/") {
			continue // the vDSO, an empty line or a message: nothing to copy
		}
		// Cut the load address from the end, so a path with a space survives.
		if i := strings.LastIndex(path, " ("); i > 0 {
			path = path[:i]
		}
		path = filepath.Clean(path)
		if !seen[path] {
			seen[path] = true
			libs = append(libs, path)
		}
	}
	if len(missing) > 0 {
		return nil, false, fmt.Errorf("libraries not found: %s", strings.Join(missing, ", "))
	}
	return libs, static, nil
}
