package crm

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/lifecycle/customer"
)

// Task is a to-do for a person in the company (the account owner), such as
// a churn warning.
type Task struct {
	Key        string
	CustomerID string
	OwnerEmail string
	// Kind is a lower_snake_case word such as customer.TaskChurnWarning.
	Kind  string
	Title string
	// DueAt is zero for a task without a due date.
	DueAt time.Time
	// Status is one of customer.TaskStatuses; empty means open.
	Status    string
	CreatedAt time.Time
}

func (t Task) validate() error {
	if err := requireText("task_key", t.Key); err != nil {
		return err
	}
	if err := requireText("customer_id", t.CustomerID); err != nil {
		return err
	}
	if err := validEmail("owner_email", t.OwnerEmail, false); err != nil {
		return err
	}
	if !kindRE.MatchString(t.Kind) {
		return invalid("kind", "%q is not a lower_snake_case word such as %q", t.Kind, customer.TaskChurnWarning)
	}
	if t.Status != "" {
		if err := requireOneOf("status", t.Status, customer.TaskStatuses); err != nil {
			return err
		}
	}
	return nil
}

// CreateTask records the task. The contact must exist (ErrNotFound) and not
// be erased (ErrErased). A retry with the same key changes nothing.
func (s *Store) CreateTask(ctx context.Context, t Task) error {
	if err := t.validate(); err != nil {
		return fmt.Errorf("create task %q: %w", t.Key, err)
	}
	if t.Status == "" {
		t.Status = customer.TaskOpen
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		const byKey = `SELECT customer_id FROM tasks WHERE task_key = $1`
		if done, err := guardContact(ctx, tx, t.CustomerID, byKey, t.Key); done || err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
INSERT INTO tasks (task_key, customer_id, owner_email, kind, title, due_at, status, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, now()), COALESCE($8, now()))
ON CONFLICT (task_key) DO NOTHING`,
			t.Key, t.CustomerID, t.OwnerEmail, t.Kind, t.Title, nullTime(t.DueAt), t.Status, nullTime(t.CreatedAt))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return keyRetry(ctx, tx, byKey, t.Key, t.CustomerID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create task %q: %w", t.Key, err)
	}
	return nil
}
