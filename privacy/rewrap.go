package privacy

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// rewrapBatch is how many keys Rewrap reads and updates per round trip.
const rewrapBatch = 500

// wrappedKey is a payload_keys row that still holds a key.
type wrappedKey struct {
	subject string
	kekID   string
	wrapped []byte
}

// Rewrap wraps every stored key that the keyring's current KEK did not wrap
// with the current KEK (unwrapping it with the Previous KEK that did), in
// batches, and sets rotated_at. It returns how many keys it rewrapped. A key
// wrapped by a KEK that is not in the ring stops it with an error naming
// the subject and the KEK id; the batches before stay rewrapped, so running
// it again with the missing KEK in Previous finishes the job.
//
// Each update applies only if the row still holds the key that was read, so
// a key shredded or rewrapped concurrently is left alone (and not counted).
func (k *Keys) Rewrap(ctx context.Context) (int, error) {
	cur := k.ring.Current
	if cur.aead == nil {
		return 0, errors.New("rewrap data keys: the keyring has no current KEK")
	}
	done := 0
	after := ""
	for {
		rows, err := k.toRewrap(ctx, cur.ID(), after)
		if err != nil {
			return done, err
		}
		if len(rows) == 0 {
			return done, nil
		}
		n, err := k.rewrapRows(ctx, rows)
		done += n
		if err != nil {
			return done, err
		}
		if len(rows) < rewrapBatch {
			return done, nil
		}
		after = rows[len(rows)-1].subject
	}
}

// toRewrap reads the next batch of keys not wrapped by currentID, in
// subject order after the subject after: paging by subject rather than by
// offset, so rows updated meanwhile neither repeat nor shift the pages.
func (k *Keys) toRewrap(ctx context.Context, currentID, after string) ([]wrappedKey, error) {
	rows, err := k.pool.Query(ctx, `
SELECT subject, kek_id, wrapped_key FROM payload_keys
WHERE kek_id IS NOT NULL AND kek_id <> $1 AND subject > $2
ORDER BY subject LIMIT $3`, currentID, after, rewrapBatch)
	if err != nil {
		return nil, fmt.Errorf("rewrap data keys: read keys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (wrappedKey, error) {
		var w wrappedKey
		err := r.Scan(&w.subject, &w.kekID, &w.wrapped)
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("rewrap data keys: read keys: %w", err)
	}
	return out, nil
}

// rewrapRows rewraps one batch in memory, then updates it in one round trip.
func (k *Keys) rewrapRows(ctx context.Context, rows []wrappedKey) (int, error) {
	cur := k.ring.Current
	batch := &pgx.Batch{}
	for _, r := range rows {
		old, ok := k.ring.byID(r.kekID)
		if !ok {
			return 0, fmt.Errorf("rewrap data key of %q: it is wrapped by KEK %s, which is not in the keyring", r.subject, r.kekID)
		}
		dataKey, err := old.unwrap(r.subject, r.wrapped)
		if err != nil {
			return 0, fmt.Errorf("rewrap data key of %q: unwrap with KEK %s: %w", r.subject, r.kekID, err)
		}
		wrapped, err := cur.wrap(r.subject, dataKey)
		if err != nil {
			return 0, fmt.Errorf("rewrap data key of %q: %w", r.subject, err)
		}
		batch.Queue(`
UPDATE payload_keys SET kek_id = $2, wrapped_key = $3, rotated_at = now()
WHERE subject = $1 AND kek_id = $4 AND wrapped_key = $5`,
			r.subject, cur.ID(), wrapped, r.kekID, r.wrapped)
	}
	results := k.pool.SendBatch(ctx, batch)
	defer results.Close()
	n := 0
	for _, r := range rows {
		tag, err := results.Exec()
		if err != nil {
			return n, fmt.Errorf("rewrap data key of %q: %w", r.subject, err)
		}
		n += int(tag.RowsAffected())
	}
	if err := results.Close(); err != nil {
		return n, fmt.Errorf("rewrap data keys: %w", err)
	}
	return n, nil
}
