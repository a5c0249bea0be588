package bolt

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"

	bolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/store"
)

// keyAccessTokensSwept, in the meta bucket, marks a file whose access-token
// records have been removed (sweepAccessTokens).
var keyAccessTokensSwept = []byte("access_tokens_swept")

// sweepBatch is how many records one transaction of the sweep deletes, so
// that a file grown to millions of them is not rewritten in one
// transaction (which would hold the write lock and its memory for long).
const sweepBatch = 10000

// sweepAccessTokens removes, once per file, the access-token records
// (store.GrantAccessToken) that Keyward wrote before access tokens became
// self-contained: nothing reads them any more, and they would otherwise
// stay until their expiry. It runs at Open, in transactions of batch
// records (sweepBatch), and then marks the file swept so later Opens skip it. Each
// record goes with its index entries. The PostgreSQL backend does the same
// in migration 0004.
func sweepAccessTokens(ctx context.Context, db *bolt.DB, logger *slog.Logger, batch int) error {
	var swept bool
	if err := db.View(func(tx *bolt.Tx) error {
		swept = tx.Bucket(bucketMeta).Get(keyAccessTokensSwept) != nil
		return nil
	}); err != nil || swept {
		return err
	}
	prefix := grantKey(store.GrantAccessToken, "")
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sweep access tokens: %w", err)
		}
		n := 0
		err := db.Update(func(tx *bolt.Tx) error {
			n = 0
			var doomed []store.Grant
			c := tx.Bucket(bucketGrants).Cursor()
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(doomed) < batch; k, v = c.Next() {
				var g store.Grant
				if err := decode(v, &g); err != nil {
					return fmt.Errorf("grant %q: %w", k, err)
				}
				doomed = append(doomed, g)
			}
			for _, g := range doomed {
				if err := deleteGrant(tx, g); err != nil {
					return err
				}
			}
			n = len(doomed)
			if n < batch {
				return tx.Bucket(bucketMeta).Put(keyAccessTokensSwept, []byte("1"))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("sweep access tokens: %w", err)
		}
		total += n
		if n < batch {
			break
		}
	}
	if total > 0 {
		logger.InfoContext(ctx, "removed stored access tokens (access tokens are self-contained now)", "records", total)
	}
	return nil
}
