package main

import (
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/result"
)

// TestImagesPush: `faultline images push` run from outside the source tree (--source)
// prints one pinned reference per image, each in the registry; without --registry it is
// a usage error.
func TestImagesPush(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the static binaries")
	}
	bin := faultlineBinary(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	source, err := filepath.Abs("../..")
	require.NoError(t, err)

	cmd := exec.Command(bin, "images", "push", "--registry", u.Host+"/ci", "--source", source)
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 2, "%s", out)
	for i, repo := range []string{"faultline", "faultline-toxiproxy"} {
		assert.Regexp(t, `^`+u.Host+`/ci/`+repo+`:[0-9a-f]{16}@sha256:[0-9a-f]{64}$`, lines[i])
	}

	cmd = exec.Command(bin, "images", "push")
	msg, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, result.ExitError, ee.ExitCode())
	assert.Contains(t, string(msg), "--registry is empty")
}
