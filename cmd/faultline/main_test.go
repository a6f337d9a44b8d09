package main

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/auth"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/system"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"version", []string{"version"}, result.ExitPassed},
		{"unknown flag", []string{"up", "--no-such-flag"}, result.ExitError},
		{"unknown command", []string{"explode"}, result.ExitError},
		{"bad replicas", []string{"up", "--orders", "-1"}, result.ExitError},
		{"bad lease", []string{"up", "--lease-ttl", "100ms"}, result.ExitError},
		{"serve without config", []string{"serve"}, result.ExitError},
		{"token with empty subject", []string{"token", "--subject", ""}, result.ExitError},
		{"stray argument", []string{"version", "extra"}, result.ExitError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(t, tt.args...)
			got := exitCode(err)
			assert.Equal(t, tt.want, got, "err: %v", err)
		})
	}
}

func TestUsageErrorsAreTyped(t *testing.T) {
	_, err := run(t, "up", "--orders", "-1")
	var ue *usageError
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), "orders is -1")

	wrapped := fmt.Errorf("outer: %w", usagef("inner"))
	assert.True(t, errors.As(wrapped, &ue))
}

func TestTokenIsAcceptedByTheSystemsVerifier(t *testing.T) {
	dir := t.TempDir()
	out, err := run(t, "token", "--dir", dir, "--subject", "alice", "--ttl", "5m")
	require.NoError(t, err)
	tok := strings.TrimSpace(out)

	secret, err := auth.LoadOrCreateSecret(filepath.Join(dir, "secrets", "jwt.key"))
	require.NoError(t, err)
	claims, err := auth.NewVerifier(secret, system.Issuer, system.Audience).Verify(tok)
	require.NoError(t, err)
	assert.Equal(t, "alice", claims.Subject)

	other, err := run(t, "token", "--dir", t.TempDir())
	require.NoError(t, err)
	_, err = auth.NewVerifier(secret, system.Issuer, system.Audience).Verify(strings.TrimSpace(other))
	require.Error(t, err, "a token from another run directory must not verify")
}

func TestVersion(t *testing.T) {
	out, err := run(t, "version")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "faultline "), out)
}
