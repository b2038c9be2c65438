package privacy

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Shred destroys the subject's data key: its row keeps no key and no KEK
// id, and records when it was shredded. When no row exists, a shredded row
// is stored, so that a later AEAD with create refuses the subject instead
// of giving it a fresh key. This process's cache learns it at once; other
// processes within their CacheTTL. Shred is idempotent; it returns true
// when a key existed and this call destroyed it.
//
// SystemSubject cannot be shredded: its key encrypts the payloads of every
// workflow that is not a customer's journey, which would all stop. A
// customer whose id is "system" shares that key (see SubjectOf), so its
// erasure fails loudly here instead.
func (k *Keys) Shred(ctx context.Context, subject string) (bool, error) {
	if subject == "" {
		return false, errors.New("shred data key: empty subject")
	}
	if subject == SystemSubject {
		return false, fmt.Errorf("shred data key of %q: it is the system subject, which encrypts every payload of no one customer", subject)
	}
	// Two statements without a transaction are enough because rows are
	// never deleted and shredding is final: when the INSERT finds a row,
	// the UPDATE finds it too, whoever created it in between.
	tag, err := k.pool.Exec(ctx, `
INSERT INTO payload_keys (subject, shredded_at) VALUES ($1, now())
ON CONFLICT (subject) DO NOTHING`, subject)
	if err != nil {
		k.cache.drop(subject)
		return false, fmt.Errorf("shred data key of %q: %w", subject, err)
	}
	destroyed := false
	if tag.RowsAffected() == 0 {
		tag, err = k.pool.Exec(ctx, `
UPDATE payload_keys SET wrapped_key = NULL, kek_id = NULL, shredded_at = now()
WHERE subject = $1 AND wrapped_key IS NOT NULL`, subject)
		if err != nil {
			k.cache.drop(subject)
			return false, fmt.Errorf("shred data key of %q: %w", subject, err)
		}
		destroyed = tag.RowsAffected() == 1
	}
	k.cache.put(subject, entry{shredded: true, expires: time.Now().Add(k.ttl())})
	return destroyed, nil
}
