package harness_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/systems"
)

// TestClaimNewDirConcurrent: claims of one name at the same moment get one directory each.
func TestClaimNewDirConcurrent(t *testing.T) {
	base := filepath.Join(t.TempDir(), "runs", "20260101T000000Z-baseline")
	const n = 8
	dirs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			d, release, err := harness.ClaimNewDir(base)
			assert.NoError(t, err)
			if err == nil {
				dirs[i] = d
				t.Cleanup(release)
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, d := range dirs {
		require.NotEmpty(t, d)
		assert.False(t, seen[d], "%s claimed twice", d)
		seen[d] = true
		assert.DirExists(t, d)
	}
	assert.True(t, seen[base], "the first claim gets the name itself")
	assert.True(t, seen[base+"-2"])
}

// TestClaimDirRefusesAHeldDirectory: a directory held by another process is refused at
// once, naming that process; once it dies the directory can be claimed.
func TestClaimDirRefusesAHeldDirectory(t *testing.T) {
	dir := t.TempDir()
	holder := holdDir(t, dir)

	t0 := time.Now()
	_, err := harness.ClaimDir(dir)
	var inUse *harness.DirInUseError
	require.ErrorAs(t, err, &inUse)
	assert.Less(t, time.Since(t0), time.Second, "refused at once, not after a wait")
	assert.Equal(t, holder.Process.Pid, inUse.PID)
	assert.Contains(t, err.Error(), "in use by process")

	require.NoError(t, holder.Process.Kill())
	_ = holder.Wait()
	release, err := harness.ClaimDir(dir)
	require.NoError(t, err, "a dead holder's lock is gone with it")
	release()
}

// TestHoldDirHelper is the holder process of holdDir, not a test of its own.
func TestHoldDirHelper(t *testing.T) {
	dir := os.Getenv("FAULTLINE_TEST_HOLD_DIR")
	if dir == "" {
		t.Skip("helper process of TestClaimDirRefusesAHeldDirectory")
	}
	if _, err := harness.ClaimDir(dir); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("held\n")
	time.Sleep(time.Minute)
}

// holdDir starts this test binary as a process that claims dir and keeps it until killed.
func holdDir(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldDirHelper$")
	cmd.Env = append(os.Environ(), "FAULTLINE_TEST_HOLD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "held\n", line)
	return cmd
}

// TestRunsStartedTogetherGetTheirOwnDirectories: two runs of one scenario started in the
// same second shared a run directory, and one wrote its ERROR result into the other's. A
// run on a directory another run holds is refused and writes nothing there.
func TestRunsStartedTogetherGetTheirOwnDirectories(t *testing.T) {
	sc := loadTestdata(t, "custom/no-such-command.yaml")
	t.Chdir(t.TempDir())
	var wg sync.WaitGroup
	res := make([]*result.Run, 2)
	for i := range res {
		wg.Go(func() { res[i], _ = harness.Run(t.Context(), sc, harness.WithSystemFor(systems.For)) })
	}
	wg.Wait()
	require.NotEmpty(t, res[0].RunDir)
	require.NotEmpty(t, res[1].RunDir)
	assert.NotEqual(t, res[0].RunDir, res[1].RunDir)
	for _, r := range res {
		saved, err := result.LoadFile(filepath.Join(r.RunDir, harness.ResultFile))
		require.NoError(t, err)
		assert.Equal(t, r.RunID, saved.RunID, "each directory holds its own run's result")
	}
	assert.NotEqual(t, res[0].RunID, res[1].RunID)

	held := t.TempDir()
	release, err := harness.ClaimDir(held)
	require.NoError(t, err)
	defer release()
	r, err := harness.Run(t.Context(), sc, harness.WithSystemFor(systems.For), harness.WithDir(held))
	require.Error(t, err)
	assert.Equal(t, result.Error, r.Verdict)
	assert.Contains(t, r.Reason, "in use by process")
	assert.Empty(t, r.RunDir, "a refused run has no directory of its own")
	assert.NoFileExists(t, filepath.Join(held, harness.ResultFile))
}

// TestRunRefusesADirectoryThatHoldsARun: a second run on a finished run's directory failed
// on its history file only after writing its ERROR result over the first run's.
func TestRunRefusesADirectoryThatHoldsARun(t *testing.T) {
	sc := loadTestdata(t, "custom/no-such-command.yaml")
	dir := t.TempDir()
	first, _ := harness.Run(t.Context(), sc, harness.WithSystemFor(systems.For), harness.WithDir(dir))
	require.Equal(t, dir, first.RunDir)
	before, err := os.ReadFile(filepath.Join(dir, harness.ResultFile))
	require.NoError(t, err)

	second, err := harness.Run(t.Context(), sc, harness.WithSystemFor(systems.For), harness.WithDir(dir))
	require.Error(t, err)
	assert.Equal(t, result.Error, second.Verdict)
	assert.Contains(t, second.Reason, "already holds a run (result.json)")
	assert.Empty(t, second.RunDir)
	after, err := os.ReadFile(filepath.Join(dir, harness.ResultFile))
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "the first run's result is untouched")
}

// TestClaimOutDir: a command's default directory is a new one even when another command
// started in the same second holds that name; a directory the user named is refused while
// another process holds it.
func TestClaimOutDir(t *testing.T) {
	base := filepath.Join(t.TempDir(), "suites", "20260101T000000Z")
	first, release1, err := harness.ClaimOutDir("", base)
	require.NoError(t, err)
	defer release1()
	second, release2, err := harness.ClaimOutDir("", base)
	require.NoError(t, err)
	defer release2()
	assert.Equal(t, base, first)
	assert.Equal(t, base+"-2", second, "the second command gets its own directory")

	named := t.TempDir()
	holder := holdDir(t, named)
	_, _, err = harness.ClaimOutDir(named, base)
	var inUse *harness.DirInUseError
	require.ErrorAs(t, err, &inUse, "a named directory another process holds is refused")
	assert.Equal(t, holder.Process.Pid, inUse.PID)

	free := t.TempDir()
	got, release3, err := harness.ClaimOutDir(free, base)
	require.NoError(t, err)
	release3()
	assert.Equal(t, free, got, "a named directory is used as named")
}
