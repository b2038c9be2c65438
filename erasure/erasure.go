// Package erasure forgets a customer on request ("the right to be
// forgotten"), whatever the state of their journey: running, ended or never
// started. An erase
//
//  1. terminates the customer's running journey at once (no further step,
//     send or CRM write of that journey happens);
//  2. redacts the CRM (crm.Store.Erase: the contact becomes a tombstone,
//     event properties, ledger addresses and task titles are blanked, and
//     every address known for the customer is suppressed by its hash only,
//     so a new signup with that address is recognised as erased);
//  3. destroys the customer's data key (privacy.Keys.Shred), so every copy
//     of the customer's Temporal payloads — histories, archives, backups —
//     can no longer be decrypted;
//  4. writes an audit row (table erasures) with no personal data: who
//     asked, when, and what each step did.
//
// The steps run in that order, so a failure part-way leaves nothing that
// a retry cannot finish: each step is idempotent, and the audit row is
// written only when all of them succeeded. The journey is terminated
// before the key is destroyed because a running journey whose key is gone
// could not decode its own history. See docs/privacy.md.
package erasure

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/acme/lifecycle/customer"
)

// Journeys ends a customer's journey; workflows.Starter is the production
// one.
type Journeys interface {
	// TerminateJourney ends the customer's running journey and reports
	// whether one was running.
	TerminateJourney(ctx context.Context, customerID, reason string) (bool, error)
}

// CRM redacts a customer's rows; *crm.Store is the production one.
type CRM interface {
	Erase(ctx context.Context, customerID string) error
}

// Keys destroys a customer's data key; *privacy.Keys is the production
// one.
type Keys interface {
	Shred(ctx context.Context, subject string) (bool, error)
}

// Eraser runs erasures. Every field is required.
type Eraser struct {
	Journeys Journeys
	CRM      CRM
	Keys     Keys
	// Audit is the CRM database, where the erasures table lives.
	Audit *pgxpool.Pool
	// Now is the clock of the audit row; nil is time.Now.
	Now func() time.Time
}

// Request is one erase request.
type Request struct {
	CustomerID string
	// RequestedBy says who asked, for the audit log: "api", "cli:<os
	// user>", or what the API caller sent. It must not be personal data
	// of the customer.
	RequestedBy string
}

// What each step did, as the audit row and Result say.
const (
	JourneyTerminated = "terminated"
	JourneyNotRunning = "not running"
	CRMRedacted       = "redacted"
	KeyShredded       = "shredded"
	KeyAlreadyGone    = "none or already shredded"
)

// Result says what an erase did.
type Result struct {
	CustomerID string    `json:"customer_id"`
	Journey    string    `json:"journey"`
	CRM        string    `json:"crm"`
	DataKey    string    `json:"data_key"`
	AuditID    int64     `json:"audit_id"`
	ErasedAt   time.Time `json:"erased_at"`
}

// ErrInvalid marks a request that cannot be run as given (a bad customer id
// or requester); retrying it unchanged will not help.
var ErrInvalid = errors.New("invalid erase request")

// terminateReason is written into the journey's history: no personal data.
const terminateReason = "customer erased on request"

// Erase forgets the customer. It is idempotent: erasing a customer twice
// (or one that never existed) succeeds and writes a second audit row.
// Errors from the servers are transient: retry the request.
func (e *Eraser) Erase(ctx context.Context, req Request) (Result, error) {
	id := strings.TrimSpace(req.CustomerID)
	if err := customer.CheckCustomerID("customer_id", id); err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	by := strings.TrimSpace(req.RequestedBy)
	if err := customer.CheckText("requested_by", by, 200); err != nil || by == "" {
		return Result{}, fmt.Errorf("%w: requested_by must be 1 to 200 characters on one line", ErrInvalid)
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	res := Result{CustomerID: id}
	requestedAt := now()

	running, err := e.Journeys.TerminateJourney(ctx, id, terminateReason)
	if err != nil {
		return res, fmt.Errorf("erase %s: end journey: %w", id, err)
	}
	res.Journey = JourneyNotRunning
	if running {
		res.Journey = JourneyTerminated
	}

	if err := e.CRM.Erase(ctx, id); err != nil {
		return res, fmt.Errorf("erase %s: redact CRM: %w", id, err)
	}
	res.CRM = CRMRedacted

	shredded, err := e.Keys.Shred(ctx, id)
	if err != nil {
		return res, fmt.Errorf("erase %s: destroy data key: %w", id, err)
	}
	res.DataKey = KeyAlreadyGone
	if shredded {
		res.DataKey = KeyShredded
	}

	res.ErasedAt = now()
	err = e.Audit.QueryRow(ctx, `
INSERT INTO erasures (customer_id, requested_by, requested_at, finished_at, journey, crm, data_key)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		id, by, requestedAt, res.ErasedAt, res.Journey, res.CRM, res.DataKey).Scan(&res.AuditID)
	if err != nil {
		return res, fmt.Errorf("erase %s: write audit row: %w", id, err)
	}
	return res, nil
}
