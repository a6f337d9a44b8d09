package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the file in a claimed directory whose lock marks it in use; it holds the
// holder's PID so that a refusal can name it.
const LockFile = ".faultline.lock"

// maxSuffix bounds the search for a free directory name: far more runs than anyone starts
// in one second, and a bound on a loop that would otherwise spin on a broken file system.
const maxSuffix = 1000

// DirInUseError is returned when another live process holds a directory.
type DirInUseError struct {
	// Dir is the directory asked for.
	Dir string
	// PID is the holder's process id, 0 when its lock file did not say.
	PID int
}

// Error names the directory and its holder.
func (e *DirInUseError) Error() string {
	holder := "another process"
	if e.PID > 0 {
		holder = "process " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("claim %s: in use by %s (lock %s); stop it or choose another directory", e.Dir, holder, filepath.Join(e.Dir, LockFile))
}

// ClaimDir creates dir if needed and claims it for this process until release: an
// exclusive lock on its LockFile, which the kernel drops when the process dies, so a
// crashed holder never leaves a directory claimed. A directory another live process holds
// is refused at once with a *DirInUseError, instead of two runs or two systems writing
// each other's files (and one waiting forever on the other's etcd lock).
func ClaimDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("claim %s: %w", dir, err)
	}
	return lockDir(dir)
}

// ClaimNewDir creates and claims a directory that did not exist: base itself, or base-2,
// base-3, ... when it does. os.Mkdir fails on an existing directory, so two runs started
// in the same second (whose default names are equal) get one directory each.
func ClaimNewDir(base string) (dir string, release func(), err error) {
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return "", nil, fmt.Errorf("claim %s: %w", base, err)
	}
	for i := 1; i <= maxSuffix; i++ {
		dir = base
		if i > 1 {
			dir = base + "-" + strconv.Itoa(i)
		}
		err := os.Mkdir(dir, 0o755)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("claim %s: %w", dir, err)
		}
		release, err := lockDir(dir)
		if err != nil {
			return "", nil, err
		}
		return dir, release, nil
	}
	return "", nil, fmt.Errorf("claim %s: %d directories of that name exist already", base, maxSuffix)
}

// ClaimOutDir claims the directory a command writes its runs into (a suite, a
// comparison, an exploration): dir when the user named one, refused with a
// *DirInUseError while another live process holds it; else a new directory named base
// (ClaimNewDir: base-2, base-3... when a command started in the same second has it).
// Without the claim, two suites started together shared their directory, and every
// scenario of one ran into the other's run directories.
func ClaimOutDir(dir, base string) (claimed string, release func(), err error) {
	if dir != "" {
		release, err := ClaimDir(dir)
		if err != nil {
			return "", nil, err
		}
		return dir, release, nil
	}
	return ClaimNewDir(base)
}

func lockDir(dir string) (func(), error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return nil, &DirInUseError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("claim %s: lock: %w", dir, err)
	}
	// The PID is written only once the lock is held, so it is the holder's.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	// The file stays: removing it would let a process that opened it before the removal
	// lock a file nobody else sees.
	return func() { _ = f.Close() }, nil
}
