package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/lifecycle/customer"
)

// HandoffReason is one event that contributed to the lead score that
// triggered a handoff to sales.
type HandoffReason struct {
	EventType string `json:"event_type"`
	Points    int    `json:"points"`
}

// Handoff is a lead handed to sales when its score reached the threshold.
type Handoff struct {
	Key        string
	CustomerID string
	Score      int
	// Reasons are the top contributing events, in the order given.
	Reasons    []HandoffReason
	OwnerEmail string
	// SLADueAt is when an unaccepted handoff escalates; zero means none.
	SLADueAt time.Time
	// Status is one of customer.HandoffStatuses; empty means open.
	Status    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (h Handoff) validate() error {
	if err := requireText("handoff_key", h.Key); err != nil {
		return err
	}
	if err := requireText("customer_id", h.CustomerID); err != nil {
		return err
	}
	if err := validEmail("owner_email", h.OwnerEmail, false); err != nil {
		return err
	}
	if h.Status != "" {
		if err := requireOneOf("status", h.Status, customer.HandoffStatuses); err != nil {
			return err
		}
	}
	for i, r := range h.Reasons {
		if err := requireText(fmt.Sprintf("reasons[%d].event_type", i), r.EventType); err != nil {
			return err
		}
	}
	return nil
}

// CreateHandoff records the handoff. The contact must exist (ErrNotFound)
// and not be erased (ErrErased). A retry with the same key changes nothing
// (the handoff's status, possibly changed since, is kept).
func (s *Store) CreateHandoff(ctx context.Context, h Handoff) error {
	if err := h.validate(); err != nil {
		return fmt.Errorf("create handoff %q: %w", h.Key, err)
	}
	if h.Status == "" {
		h.Status = customer.HandoffOpen
	}
	reasons := h.Reasons
	if reasons == nil {
		reasons = []HandoffReason{}
	}
	reasonsJSON, err := json.Marshal(reasons)
	if err != nil {
		return fmt.Errorf("create handoff %q: %w", h.Key, err)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		const byKey = `SELECT customer_id FROM handoffs WHERE handoff_key = $1`
		if done, err := guardContact(ctx, tx, h.CustomerID, byKey, h.Key); done || err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
INSERT INTO handoffs (handoff_key, customer_id, score, reasons, owner_email, sla_due_at, status, created_at, updated_at)
VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, COALESCE($8, now()), COALESCE($8, now()))
ON CONFLICT (handoff_key) DO NOTHING`,
			h.Key, h.CustomerID, h.Score, string(reasonsJSON), h.OwnerEmail, nullTime(h.SLADueAt), h.Status, nullTime(h.CreatedAt))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return keyRetry(ctx, tx, byKey, h.Key, h.CustomerID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create handoff %q: %w", h.Key, err)
	}
	return nil
}

var closedHandoff = []string{customer.HandoffWon, customer.HandoffLost, customer.HandoffRejected}

// SetHandoffStatus moves the handoff to status (one of customer.HandoffStatuses).
// Setting the status it already has is a no-op; an unknown key is
// ErrNotFound; a handoff that is won, lost or rejected cannot be moved to
// another status (ErrHandoffClosed), so a late escalation never reopens a
// closed deal.
func (s *Store) SetHandoffStatus(ctx context.Context, handoffKey, status string) error {
	if err := requireText("handoff_key", handoffKey); err != nil {
		return fmt.Errorf("set handoff status: %w", err)
	}
	if err := requireOneOf("status", status, customer.HandoffStatuses); err != nil {
		return fmt.Errorf("set handoff %q status: %w", handoffKey, err)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var current string
		err := tx.QueryRow(ctx, `SELECT status FROM handoffs WHERE handoff_key = $1 FOR UPDATE`, handoffKey).Scan(&current)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if current == status {
			return nil
		}
		if slices.Contains(closedHandoff, current) {
			return fmt.Errorf("%w: it is %s", ErrHandoffClosed, current)
		}
		_, err = tx.Exec(ctx, `UPDATE handoffs SET status = $2, updated_at = now() WHERE handoff_key = $1`, handoffKey, status)
		return err
	})
	if err != nil {
		return fmt.Errorf("set handoff %q status %q: %w", handoffKey, status, err)
	}
	return nil
}

// GetHandoff returns the handoff, or ErrNotFound.
func (s *Store) GetHandoff(ctx context.Context, handoffKey string) (Handoff, error) {
	var h Handoff
	var sla *time.Time
	var reasons []byte
	err := s.pool.QueryRow(ctx, `
SELECT handoff_key, customer_id, score, reasons, owner_email, sla_due_at, status, created_at, updated_at
FROM handoffs WHERE handoff_key = $1`, handoffKey).Scan(
		&h.Key, &h.CustomerID, &h.Score, &reasons, &h.OwnerEmail, &sla, &h.Status, &h.CreatedAt, &h.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Handoff{}, fmt.Errorf("get handoff %q: %w", handoffKey, ErrNotFound)
	}
	if err != nil {
		return Handoff{}, fmt.Errorf("get handoff %q: %w", handoffKey, err)
	}
	if err := json.Unmarshal(reasons, &h.Reasons); err != nil {
		return Handoff{}, fmt.Errorf("get handoff %q: reasons: %w", handoffKey, err)
	}
	h.SLADueAt = timeOrZero(sla)
	return h, nil
}
