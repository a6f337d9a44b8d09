package store_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/store"
)

// TestReplicasOpenAFreshDatabaseAtOnce: replicas of one service start at the same moment
// and open the shared database file before either created it; none may fail with
// SQLITE_BUSY (seen as "open database ...: database is locked" on a container start).
func TestReplicasOpenAFreshDatabaseAtOnce(t *testing.T) {
	for round := range 30 {
		path := filepath.Join(t.TempDir(), "shared.db")
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				db, err := store.Open(context.Background(), path)
				if err != nil {
					errs <- err
					return
				}
				errs <- store.Migrate(context.Background(), db, []string{"CREATE TABLE t (id INTEGER PRIMARY KEY)"})
				_ = db.Close()
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err, "round %d", round)
		}
	}
}
