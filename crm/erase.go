package crm

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/acme/lifecycle/customer"
)

// Erase deletes the personal data of a customer, in one transaction:
//
//   - every address known for the customer (the contact's and those in the
//     send ledger) is suppressed with reason erased, by hash only;
//   - the contact becomes an anonymised tombstone: customer_id, stage
//     "erased", erased_at, created_at, the campaign and the lead source stay;
//     email, names, company, role, company size, time zone, owners,
//     consent and tags are blanked (tags can say what a person attended);
//   - the properties of the customer's events become {};
//   - addresses in the send ledger and task titles become "";
//   - a stage transition to "erased" is recorded (key "<customer id>/erased").
//
// Stage history, scores, handoff reasons and ledger keys stay: they hold no
// personal data, only the customer id. Erase is idempotent, and works for a
// customer without a contact row (a tombstone is created, so a late
// UpsertContact cannot create the person again). Later writes about the
// customer return ErrErased.
func (s *Store) Erase(ctx context.Context, customerID string) error {
	customerID = strings.TrimSpace(customerID)
	if err := requireText("customer_id", customerID); err != nil {
		return fmt.Errorf("erase: %w", err)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Create the tombstone if there is no contact, then lock the row so
		// that concurrent writes about the customer wait for the erasure.
		if _, err := tx.Exec(ctx, `
INSERT INTO contacts (customer_id) VALUES ($1) ON CONFLICT (customer_id) DO NOTHING`, customerID); err != nil {
			return err
		}
		var email, stage string
		err := tx.QueryRow(ctx, `SELECT email, stage FROM contacts WHERE customer_id = $1 FOR UPDATE`, customerID).Scan(&email, &stage)
		if err != nil {
			return err
		}

		rows, err := tx.Query(ctx, `
SELECT DISTINCT email FROM email_log WHERE customer_id = $1 AND email <> ''`, customerID)
		if err != nil {
			return err
		}
		addresses, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if email != "" {
			addresses = append(addresses, email)
		}
		seen := map[string]bool{}
		for _, a := range addresses {
			h := HashEmail(a)
			if seen[h] {
				continue
			}
			seen[h] = true
			if err := suppress(ctx, tx, h, customerID, customer.ReasonErased); err != nil {
				return fmt.Errorf("suppress address: %w", err)
			}
		}

		if stage != string(customer.StageErased) {
			if _, err := tx.Exec(ctx, `
INSERT INTO stage_transitions (transition_key, customer_id, from_stage, to_stage, reason, at)
VALUES ($1, $2, $3, 'erased', 'personal data erased', now())
ON CONFLICT (transition_key) DO NOTHING`, customerID+"/erased", customerID, stage); err != nil {
				return fmt.Errorf("record transition: %w", err)
			}
		}
		steps := []struct{ what, sql string }{
			{"contact", `
UPDATE contacts SET email = '', first_name = '', last_name = '', company = '', role = '',
    company_size = 0, time_zone = '', owner_email = '', delivery_owner_email = '',
    consent = false, tags = '{}', stage = 'erased',
    stage_changed_at = CASE WHEN erased_at IS NULL THEN now() ELSE stage_changed_at END,
    erased_at = COALESCE(erased_at, now()), updated_at = now()
WHERE customer_id = $1`},
			{"events", `UPDATE events SET properties = '{}'::jsonb WHERE customer_id = $1 AND properties <> '{}'::jsonb`},
			{"send ledger", `UPDATE email_log SET email = '', updated_at = now() WHERE customer_id = $1 AND email <> ''`},
			{"tasks", `UPDATE tasks SET title = '', updated_at = now() WHERE customer_id = $1 AND title <> ''`},
		}
		for _, st := range steps {
			if _, err := tx.Exec(ctx, st.sql, customerID); err != nil {
				return fmt.Errorf("blank %s: %w", st.what, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("erase customer %q: %w", customerID, err)
	}
	return nil
}
