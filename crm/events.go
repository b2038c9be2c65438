package crm

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/lifecycle/customer"
)

// Event is one event pushed by a CRM or product system (email opened,
// pricing page viewed, demo requested, …). ID is the sender's event id and
// the idempotency key: an event recorded twice is stored once.
type Event struct {
	ID         string
	CustomerID string
	Type       string
	OccurredAt time.Time
	// ReceivedAt is when the system received it; zero means now.
	ReceivedAt time.Time
	// Properties must marshal to a JSON object; nil is stored as {}.
	Properties map[string]any
	// IgnoredReason is set by the caller for an event it does not act on
	// (an unknown type, say): the event is still kept, with the reason.
	IgnoredReason string
}

// IgnoredErased is the IgnoredReason the store sets on an event that
// arrives for an erased customer; its properties are not stored.
const IgnoredErased = "customer erased"

// validate applies the event rules of package customer (the same as the
// API and the journey) and names the first bad field.
func (e Event) validate(field string) error {
	for _, err := range []error{
		customer.CheckEventID(field+".event_id", e.ID),
		customer.CheckCustomerID(field+".customer_id", e.CustomerID),
		customer.CheckEventType(field+".type", e.Type),
		customer.CheckProperties(field+".properties", e.Properties),
	} {
		if err != nil {
			return rule(err)
		}
	}
	if e.OccurredAt.IsZero() {
		return invalid(field+".occurred_at", "is zero")
	}
	return nil
}

// RecordEvents stores a batch of events in one statement and returns how
// many were new; see RecordNewEvents.
func (s *Store) RecordEvents(ctx context.Context, events []Event) (int, error) {
	fresh, err := s.RecordNewEvents(ctx, "", events)
	return len(fresh), err
}

// RecordNewEvents stores a batch of events in one statement and returns
// the IDs that were new, in batch order. An event id is unique per
// customer: events already stored (same customer and ID) and repeats inside
// the batch are skipped, the first occurrence wins; the same id of another
// customer is another event. A batch normally holds one customer's events
// (the journey's), so the IDs returned are unambiguous.
// batch (may be empty) identifies the call: events stored earlier under the
// same batch count as new again, so a retried call gets the same answer. The
// whole batch is rejected, before anything is written, if one event is
// invalid; the error names it ("events[3].customer_id"). Events of an
// erased customer are stored without properties and with IgnoredReason
// "customer erased", so the event ids stay deduplicated and no personal
// data comes back.
func (s *Store) RecordNewEvents(ctx context.Context, batch string, events []Event) ([]string, error) {
	if len(events) == 0 {
		return nil, nil
	}
	n := len(events)
	ids, customers, types := make([]string, n), make([]string, n), make([]string, n)
	occurred, received := make([]time.Time, n), make([]*time.Time, n)
	props, ignored := make([]string, n), make([]*string, n)
	for i, e := range events {
		field := fmt.Sprintf("events[%d]", i)
		e.ID, e.CustomerID, e.Type = strings.TrimSpace(e.ID), strings.TrimSpace(e.CustomerID), strings.TrimSpace(e.Type)
		if err := e.validate(field); err != nil {
			return nil, fmt.Errorf("record events: %w", err)
		}
		p := []byte("{}")
		if e.Properties != nil {
			var err error
			if p, err = json.Marshal(e.Properties); err != nil {
				return nil, fmt.Errorf("record events: %w", invalid(field+".properties", "cannot be encoded as JSON: %v", err))
			}
		}
		ids[i], customers[i], types[i] = e.ID, e.CustomerID, e.Type
		occurred[i], received[i], props[i] = e.OccurredAt, nullTime(e.ReceivedAt), string(p)
		if e.IgnoredReason != "" {
			ignored[i] = &e.IgnoredReason
		}
	}
	// The second SELECT sees the table as it was before the INSERT (one
	// snapshot): rows this call's batch stored in an earlier attempt.
	const q = `
WITH ins AS (
    INSERT INTO events (event_id, customer_id, type, occurred_at, received_at, properties, ignored_reason, recorded_by)
    SELECT DISTINCT ON (e.customer_id, e.event_id)
        e.event_id, e.customer_id, e.type, e.occurred_at, COALESCE(e.received_at, now()),
        CASE WHEN c.erased_at IS NULL THEN e.properties::jsonb ELSE '{}'::jsonb END,
        CASE WHEN c.erased_at IS NULL THEN e.ignored_reason ELSE $8 END,
        NULLIF($9, '')
    FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[], $7::text[])
        WITH ORDINALITY AS e(event_id, customer_id, type, occurred_at, received_at, properties, ignored_reason, ord)
    LEFT JOIN contacts c ON c.customer_id = e.customer_id
    ORDER BY e.customer_id, e.event_id, e.ord
    ON CONFLICT (customer_id, event_id) DO NOTHING
    RETURNING customer_id, event_id
)
SELECT customer_id, event_id FROM ins
UNION ALL
SELECT customer_id, event_id FROM events
WHERE $9 <> '' AND recorded_by = $9
  AND (customer_id, event_id) IN (SELECT * FROM unnest($2::text[], $1::text[]))`
	rows, err := s.pool.Query(ctx, q, ids, customers, types, occurred, received, props, ignored, IgnoredErased, batch)
	if err != nil {
		return nil, fmt.Errorf("record %d events: %w", n, err)
	}
	type key struct{ customer, id string }
	inserted, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (key, error) {
		var k key
		err := row.Scan(&k.customer, &k.id)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("record %d events: %w", n, err)
	}
	isNew := make(map[key]bool, len(inserted))
	for _, k := range inserted {
		isNew[k] = true
	}
	fresh := make([]string, 0, len(inserted))
	for i, id := range ids {
		k := key{customers[i], id}
		if isNew[k] {
			fresh = append(fresh, id)
			delete(isNew, k) // a repeat inside the batch is listed once
		}
	}
	return fresh, nil
}

// EventsOf returns the recorded events of a customer, oldest first.
func (s *Store) EventsOf(ctx context.Context, customerID string) ([]Event, error) {
	if err := requireText("customer_id", customerID); err != nil {
		return nil, fmt.Errorf("events of customer: %w", err)
	}
	rows, err := s.pool.Query(ctx, `
SELECT event_id, customer_id, type, occurred_at, received_at, properties, COALESCE(ignored_reason, '')
FROM events WHERE customer_id = $1 ORDER BY occurred_at, event_id`, customerID)
	if err != nil {
		return nil, fmt.Errorf("events of customer %q: %w", customerID, err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.ID, &e.CustomerID, &e.Type, &e.OccurredAt, &e.ReceivedAt, &e.Properties, &e.IgnoredReason); err != nil {
			return nil, fmt.Errorf("events of customer %q: %w", customerID, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events of customer %q: %w", customerID, err)
	}
	return out, nil
}
