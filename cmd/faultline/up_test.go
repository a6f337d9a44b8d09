package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/harness"
)

// TestUpRefusesADirectoryInUse: a second up on one --dir rewrote the first one's configs
// and then waited forever on its etcd lock. It must be refused at once, naming the holder,
// before anything in the directory is touched.
func TestUpRefusesADirectoryInUse(t *testing.T) {
	dir := t.TempDir()
	release, err := harness.ClaimDir(dir) // what the first up holds while it runs
	require.NoError(t, err)
	defer release()

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"up", "--dir", dir})
	t0 := time.Now()
	err = root.ExecuteContext(ctx)
	require.Error(t, err, out.String())
	assert.Less(t, time.Since(t0), 5*time.Second, "refused at once, not after starting or waiting")
	assert.Contains(t, err.Error(), fmt.Sprintf("in use by process %d", os.Getpid()))
	assert.NoDirExists(t, filepath.Join(dir, "config"), "nothing of the first system is rewritten")
	assert.NotContains(t, out.String(), "starting the reference system")
}
