package crm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/lifecycle/customer"
)

// Transition is one stage change of a customer's journey. Key is the
// idempotency key (for example "<workflow id>/<step>/to-<stage>").
type Transition struct {
	Key        string
	CustomerID string
	From       string // empty for the first stage
	To         string
	Reason     string
	// CampaignID and CampaignVersion, when CampaignID is set, are the
	// campaign version the journey runs on from this transition on.
	CampaignID      string
	CampaignVersion string
	// At is when the journey changed stage (workflow time); zero means now.
	At time.Time
	// Journey names the journey instance that made the change and StageSeq
	// counts its stage changes (1 for its first); the contact keeps both
	// with the stage, so that the send ledger can tell a marketing email
	// planned in an earlier stage (see SendClaim.StageSeq). Optional.
	Journey  string
	StageSeq int
}

func (t Transition) validate() error {
	if err := requireText("transition_key", t.Key); err != nil {
		return err
	}
	if err := requireText("customer_id", t.CustomerID); err != nil {
		return err
	}
	if err := validStage("from_stage", t.From, true); err != nil {
		return err
	}
	if err := validStage("to_stage", t.To, false); err != nil {
		return err
	}
	if t.To == string(customer.StageErased) {
		return invalid("to_stage", "%q is set by Erase only", t.To)
	}
	if t.StageSeq < 0 {
		return invalid("stage_seq", "%d is negative", t.StageSeq)
	}
	return nil
}

// RecordTransition records the stage change and, in the same transaction,
// sets contacts.stage, journey and stage_seq (and the campaign version,
// when given). A contact that does not exist yet is created empty (a
// journey started by events before the signup still has a stage); an
// erased one is not written (ErrErased). A retry with the same key changes
// nothing. A transition older than the stage the contact already has (a
// delayed retry) is kept in the history but does not move the contact's
// stage back.
func (s *Store) RecordTransition(ctx context.Context, t Transition) error {
	if err := t.validate(); err != nil {
		return fmt.Errorf("record transition %q: %w", t.Key, err)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		const byKey = `SELECT customer_id FROM stage_transitions WHERE transition_key = $1`
		if done, err := guardOrCreateContact(ctx, tx, t.CustomerID, byKey, t.Key); done || err != nil {
			return err
		}
		var at time.Time
		err := tx.QueryRow(ctx, `
INSERT INTO stage_transitions (transition_key, customer_id, from_stage, to_stage, reason, campaign_id, campaign_version, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, now()))
ON CONFLICT (transition_key) DO NOTHING
RETURNING at`, t.Key, t.CustomerID, t.From, t.To, t.Reason, t.CampaignID, t.CampaignVersion, nullTime(t.At)).Scan(&at)
		if errors.Is(err, pgx.ErrNoRows) {
			return keyRetry(ctx, tx, byKey, t.Key, t.CustomerID)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
UPDATE contacts SET
    stage = $2,
    stage_changed_at = $3,
    campaign_id = CASE WHEN $4 = '' THEN campaign_id ELSE $4 END,
    campaign_version = CASE WHEN $4 = '' THEN campaign_version ELSE $5 END,
    journey = CASE WHEN $6 = '' THEN journey ELSE $6 END,
    stage_seq = CASE WHEN $6 = '' THEN stage_seq ELSE $7 END,
    updated_at = now()
WHERE customer_id = $1 AND (stage_changed_at IS NULL OR stage_changed_at <= $3)`,
			t.CustomerID, t.To, at, t.CampaignID, t.CampaignVersion, t.Journey, t.StageSeq)
		return err
	})
	if err != nil {
		return fmt.Errorf("record transition %q: %w", t.Key, err)
	}
	return nil
}

// ScoreEntry is one lead-score change: the new Score with its Behaviour
// (engagement points) and Fit (profile points) parts and why it changed.
type ScoreEntry struct {
	Key        string
	CustomerID string
	Score      int
	Behaviour  int
	Fit        int
	Reason     string
	// At is when the score changed (workflow time); zero means now.
	At time.Time
}

func (e ScoreEntry) validate() error {
	if err := requireText("score_key", e.Key); err != nil {
		return err
	}
	return requireText("customer_id", e.CustomerID)
}

// RecordScore records the score change and, in the same transaction, sets
// contacts.score, unless the contact already has a newer score. A contact
// that does not exist yet is created empty (a lead scores points before
// the signup); an erased one is not written (ErrErased). A retry with the
// same key changes nothing.
func (s *Store) RecordScore(ctx context.Context, e ScoreEntry) error {
	if err := e.validate(); err != nil {
		return fmt.Errorf("record score %q: %w", e.Key, err)
	}
	// The common case — the contact exists, is not erased, the key is new —
	// in one statement: the journey writes a score with most events, and
	// a transaction of four statements cost a visible part of the event
	// rate. Anything else takes the careful path below.
	var contacts, inserted int
	var erased bool
	err := s.pool.QueryRow(ctx, `
WITH c AS (
    SELECT erased_at FROM contacts WHERE customer_id = $2 FOR UPDATE
), ins AS (
    INSERT INTO score_history (score_key, customer_id, score, behaviour, fit, reason, at)
    SELECT $1, $2, $3, $4, $5, $6, COALESCE($7, now()) FROM c WHERE c.erased_at IS NULL
    ON CONFLICT (score_key) DO NOTHING
    RETURNING at
), upd AS (
    UPDATE contacts SET score = $3, score_changed_at = ins.at, updated_at = now()
    FROM ins
    WHERE contacts.customer_id = $2 AND (contacts.score_changed_at IS NULL OR contacts.score_changed_at <= ins.at)
)
SELECT (SELECT count(*) FROM c), COALESCE((SELECT erased_at IS NOT NULL FROM c), false), (SELECT count(*) FROM ins)`,
		e.Key, e.CustomerID, e.Score, e.Behaviour, e.Fit, e.Reason, nullTime(e.At)).Scan(&contacts, &erased, &inserted)
	if err != nil {
		return fmt.Errorf("record score %q: %w", e.Key, err)
	}
	if contacts == 1 && !erased && inserted == 1 {
		return nil
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		const byKey = `SELECT customer_id FROM score_history WHERE score_key = $1`
		if done, err := guardOrCreateContact(ctx, tx, e.CustomerID, byKey, e.Key); done || err != nil {
			return err
		}
		var at time.Time
		err := tx.QueryRow(ctx, `
INSERT INTO score_history (score_key, customer_id, score, behaviour, fit, reason, at)
VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, now()))
ON CONFLICT (score_key) DO NOTHING
RETURNING at`, e.Key, e.CustomerID, e.Score, e.Behaviour, e.Fit, e.Reason, nullTime(e.At)).Scan(&at)
		if errors.Is(err, pgx.ErrNoRows) {
			return keyRetry(ctx, tx, byKey, e.Key, e.CustomerID)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
UPDATE contacts SET score = $2, score_changed_at = $3, updated_at = now()
WHERE customer_id = $1 AND (score_changed_at IS NULL OR score_changed_at <= $3)`,
			e.CustomerID, e.Score, at)
		return err
	})
	if err != nil {
		return fmt.Errorf("record score %q: %w", e.Key, err)
	}
	return nil
}

// guardOrCreateContact is guardContact for a customer who may have no
// contact yet: one is created empty (no address, no consent: it is in no
// audience) and then guarded.
func guardOrCreateContact(ctx context.Context, tx pgx.Tx, customerID, byKey, key string) (done bool, err error) {
	done, err = guardContact(ctx, tx, customerID, byKey, key)
	if !errors.Is(err, ErrNotFound) {
		return done, err
	}
	_, err = tx.Exec(ctx, `INSERT INTO contacts (customer_id) VALUES ($1) ON CONFLICT (customer_id) DO NOTHING`, customerID)
	if err != nil {
		return false, err
	}
	return guardContact(ctx, tx, customerID, byKey, key)
}

// guardContact locks the contact row for the rest of the transaction (so
// that Erase and the write are serialised) and checks that it exists
// (ErrNotFound) and is not erased (ErrErased). A retry of a write made
// before the erasure (byKey finds the key, for the same customer) is still
// a success: done is true and there is nothing left to do.
func guardContact(ctx context.Context, tx pgx.Tx, customerID, byKey, key string) (done bool, err error) {
	var erasedAt *time.Time
	err = tx.QueryRow(ctx, `SELECT erased_at FROM contacts WHERE customer_id = $1 FOR UPDATE`, customerID).Scan(&erasedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("contact %q: %w", customerID, ErrNotFound)
	}
	if err != nil {
		return false, err
	}
	if erasedAt == nil {
		return false, nil
	}
	var owner string
	err = tx.QueryRow(ctx, byKey, key).Scan(&owner)
	if err == nil && owner == customerID {
		return true, nil
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, err
	}
	return false, fmt.Errorf("contact %q: %w", customerID, ErrErased)
}

// keyRetry is called when an INSERT … ON CONFLICT DO NOTHING wrote nothing:
// the key exists. For the same customer that is a retry (success); for
// another customer the caller derived the key wrongly.
func keyRetry(ctx context.Context, tx pgx.Tx, query, key, customerID string) error {
	var got string
	if err := tx.QueryRow(ctx, query, key).Scan(&got); err != nil {
		return err
	}
	if got != customerID {
		return fmt.Errorf("%w: key %q belongs to customer %q", ErrKeyConflict, key, got)
	}
	return nil
}
