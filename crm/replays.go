package crm

import (
	"context"
	"fmt"
	"time"
)

// maxSignatureLen bounds a stored signature; the API stores hex
// HMAC-SHA256 (64 characters), so anything much longer is a bug.
const maxSignatureLen = 256

// UseSignature records that an API request signature was used, and reports
// whether it was fresh: false means another request (on this or any other
// API replica, before or after a restart) already used it. The row is
// kept until expires, after which the API refuses the signature by its
// timestamp anyway; SweepSignatures deletes it then. An expired row that
// was not swept yet still counts as used, which is harmless for the same
// reason.
func (s *Store) UseSignature(ctx context.Context, sig string, expires time.Time) (fresh bool, err error) {
	if err := requireText("signature", sig); err != nil {
		return false, fmt.Errorf("use signature: %w", err)
	}
	if len(sig) > maxSignatureLen {
		return false, fmt.Errorf("use signature: %w", invalid("signature", "is longer than %d characters", maxSignatureLen))
	}
	if expires.IsZero() {
		return false, fmt.Errorf("use signature: %w", invalid("expires_at", "is zero"))
	}
	tag, err := s.pool.Exec(ctx, `
INSERT INTO api_replays (signature, expires_at) VALUES ($1, $2)
ON CONFLICT (signature) DO NOTHING`, sig, expires)
	if err != nil {
		return false, fmt.Errorf("use signature: insert into api_replays: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// SweepSignatures deletes at most limit signatures that expired before
// before, and returns how many it deleted; call it again while it returns
// limit. The bound keeps each statement short, and SKIP LOCKED lets API
// replicas that sweep at the same time share the work instead of waiting
// on each other's rows.
func (s *Store) SweepSignatures(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("sweep signatures: %w", invalid("limit", "must be positive, got %d", limit))
	}
	tag, err := s.pool.Exec(ctx, `
DELETE FROM api_replays
WHERE signature IN (
    SELECT signature FROM api_replays
    WHERE expires_at < $1
    ORDER BY expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED)`, before, limit)
	if err != nil {
		return 0, fmt.Errorf("sweep signatures: delete from api_replays: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
