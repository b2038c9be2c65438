package crm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/acme/lifecycle/customer"
)

// HashEmail returns the key of an address on the suppression list: the hex
// sha256 of the trimmed, lower-cased address. The list keeps only hashes,
// so an erased person's address is not kept in clear.
func HashEmail(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:])
}

// Suppress puts the address on the suppression list with reason (one of
// customer.SuppressionReasons); customerID may be empty. A suppression is only ever
// strengthened (unsubscribed < invalid < bounced < complained < erased), so
// a late unsubscribe never turns an erased or bounced address back into
// one that still gets transactional mail. Unsubscribed and complained also
// withdraw the contact's marketing consent. Suppressing twice is a no-op.
func (s *Store) Suppress(ctx context.Context, email, customerID, reason string) error {
	if err := requireText("email", email); err != nil {
		return fmt.Errorf("suppress: %w", err)
	}
	if err := requireOneOf("reason", reason, customer.SuppressionReasons); err != nil {
		return fmt.Errorf("suppress: %w", err)
	}
	customerID = strings.TrimSpace(customerID)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		return suppress(ctx, tx, HashEmail(email), customerID, reason)
	})
	if err != nil {
		return fmt.Errorf("suppress (%s): %w", reason, err)
	}
	return nil
}

func suppress(ctx context.Context, tx pgx.Tx, hash, customerID, reason string) error {
	// The contact row first, then the suppression: the order Erase takes
	// its locks in, so the two never deadlock.
	if customerID != "" && (reason == customer.ReasonUnsubscribed || reason == customer.ReasonComplained) {
		if _, err := tx.Exec(ctx, `
UPDATE contacts SET consent = false, updated_at = now()
WHERE customer_id = $1 AND consent AND erased_at IS NULL`, customerID); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `
INSERT INTO suppressions AS s (email_hash, reason, customer_id)
VALUES ($1, $2, $3)
ON CONFLICT (email_hash) DO UPDATE SET
    reason = EXCLUDED.reason,
    customer_id = CASE WHEN EXCLUDED.customer_id = '' THEN s.customer_id ELSE EXCLUDED.customer_id END,
    updated_at = now()
WHERE array_position($4::text[], EXCLUDED.reason) > array_position($4::text[], s.reason)`,
		hash, reason, customerID, customer.SuppressionReasons)
	return err
}

// IsSuppressed reports whether the address is on the suppression list (the
// comparison ignores case) and why.
func (s *Store) IsSuppressed(ctx context.Context, email string) (bool, string, error) {
	if err := requireText("email", email); err != nil {
		return false, "", fmt.Errorf("is suppressed: %w", err)
	}
	var reason string
	err := s.pool.QueryRow(ctx, `SELECT reason FROM suppressions WHERE email_hash = $1`, HashEmail(email)).Scan(&reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("is suppressed: %w", err)
	}
	return true, reason, nil
}
