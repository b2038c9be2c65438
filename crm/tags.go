package crm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/acme/lifecycle/customer"
)

// tagsMaxConstraint is the CHECK of migration 00009 that caps a contact's
// tags at customer.MaxTagsPerContact.
const tagsMaxConstraint = "contacts_tags_max"

// setTagsSQL computes the new set from the row being updated (c.tags), not
// from a value read earlier: under READ COMMITTED, an UPDATE that waits for
// a concurrent change of the row re-evaluates SET on the row's newest
// version, so two concurrent changes of one contact both land. The array
// is sorted with COLLATE "C" (byte order, as Go's slices.Sort), not by the
// database's collation, which ignores punctuation ("a-c" after "ab").
//
// The outer SELECT reads the row as it was before the statement, to tell a
// missing contact (NULL) from an erased one (true) when nothing was
// updated.
const setTagsSQL = `
WITH changed AS (
    UPDATE contacts c
    SET tags = ARRAY(
            SELECT DISTINCT u.t COLLATE "C" FROM unnest(c.tags || $2::text[]) AS u(t)
            WHERE u.t <> ALL ($3::text[])
            ORDER BY 1),
        updated_at = now()
    WHERE c.customer_id = $1 AND c.erased_at IS NULL
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM changed),
    (SELECT c.erased_at IS NOT NULL FROM contacts c WHERE c.customer_id = $1)`

// SetTags changes a contact's tags to (tags ∪ add) \ remove, stored sorted
// and distinct; a tag in both add and remove is removed. It is one
// statement and a set operation, so a retried call writes the same tags
// (adding a tag the contact has, or removing one it has not, changes
// nothing but updated_at).
//
// add and remove follow customer.CheckTags (at most
// customer.MaxTagsPerChange each); a bad one is a *ValidationError naming
// it by the event properties that carry it ("tags[2]", "remove_tags[0]").
// A change that would leave the contact more than
// customer.MaxTagsPerContact tags writes nothing and is a *ValidationError
// for field "tags". An erased contact gives ErrErased, a missing one
// ErrNotFound (SetTags does not create contacts).
func (s *Store) SetTags(ctx context.Context, customerID string, add, remove []string) error {
	customerID = strings.TrimSpace(customerID)
	if err := validTagChange(customerID, add, remove); err != nil {
		return fmt.Errorf("set tags of %q: %w", customerID, err)
	}
	// A nil slice is sent as SQL NULL, and "t <> ALL (NULL)" is NULL for
	// every t: removing nothing would remove every tag.
	if add == nil {
		add = []string{}
	}
	if remove == nil {
		remove = []string{}
	}
	var changed bool
	var erased *bool
	err := s.pool.QueryRow(ctx, setTagsSQL, customerID, add, remove).Scan(&changed, &erased)
	if isConstraint(err, tagsMaxConstraint) {
		return fmt.Errorf("set tags of %q: %w", customerID,
			invalid("tags", "the contact would have more than %d tags (at most %d per contact)",
				customer.MaxTagsPerContact, customer.MaxTagsPerContact))
	}
	if err != nil {
		return fmt.Errorf("set tags of %q: %w", customerID, err)
	}
	switch {
	case changed:
		return nil
	case erased == nil:
		return fmt.Errorf("set tags of %q: %w", customerID, ErrNotFound)
	default:
		// The row exists and the WHERE excluded it: it is a tombstone.
		return fmt.Errorf("set tags of %q: %w", customerID, ErrErased)
	}
}

func validTagChange(customerID string, add, remove []string) error {
	if err := requireText("customer_id", customerID); err != nil {
		return err
	}
	if err := customer.CheckTags(customer.PropertyTags, add); err != nil {
		return rule(err)
	}
	if err := customer.CheckTags(customer.PropertyRemoveTags, remove); err != nil {
		return rule(err)
	}
	return nil
}

// isConstraint reports whether err is a CHECK violation of the named
// constraint.
func isConstraint(err error, name string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514" && pgErr.ConstraintName == name
}
