package crm_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
)

// TestSchemaAllowsTheVocabulary reads the CHECK constraints of the migrated
// schema and fails when a column's allowed values and the Go vocabulary
// (package customer, the send ledger's statuses) drift apart: a value the
// code writes but the database refuses fails only at run time, inside a
// journey, and a value the database still allows but the code no longer
// knows lets stale data in.
func TestSchemaAllowsTheVocabulary(t *testing.T) {
	s := newStore(t)
	allowed := checkedValues(t, s)

	orEmpty := func(v []string) []string { return append([]string{""}, v...) }
	categories := make([]string, len(customer.Categories))
	for i, c := range customer.Categories {
		categories[i] = string(c)
	}
	for column, want := range map[string][]string{
		"contacts.lead_source":         orEmpty(customer.LeadSources),
		"contacts.stage":               orEmpty(customer.StageNames()),
		"stage_transitions.from_stage": orEmpty(customer.StageNames()),
		"stage_transitions.to_stage":   customer.StageNames(),
		"suppressions.reason":          customer.SuppressionReasons,
		"handoffs.status":              customer.HandoffStatuses,
		"tasks.status":                 customer.TaskStatuses,
		"email_log.category":           categories,
		// The send ledger's statuses (sends.go).
		"email_log.status": {crm.SendClaimed, crm.SendSent, crm.SendFailed, crm.SendSuppressed},
	} {
		got, ok := allowed[column]
		if assert.True(t, ok, "%s has no CHECK (... IN (...)) constraint", column) {
			assert.ElementsMatch(t, want, got, "%s: the values its CHECK allows (left: Go, right: schema)", column)
		}
	}
}

// TestSchemaMatchesTheTagLimit fails when the database's cap on a
// contact's tags (contacts_tags_max, which SetTags reports as invalid
// "tags") and customer.MaxTagsPerContact, which the journey and the API
// enforce, drift apart.
func TestSchemaMatchesTheTagLimit(t *testing.T) {
	s := newStore(t)
	var def string
	require.NoError(t, s.Pool().QueryRow(t.Context(), `
SELECT pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'contacts'::regclass AND conname = 'contacts_tags_max'`).Scan(&def))
	assert.Equal(t, fmt.Sprintf("CHECK ((cardinality(tags) <= %d))", customer.MaxTagsPerContact), def)
}

// checkedValues returns, per "table.column", the values of the column's
// CHECK (column IN (...)) constraint; a column with two such constraints
// fails the test.
func checkedValues(t *testing.T, s *crm.Store) map[string][]string {
	t.Helper()
	rows, err := s.Pool().Query(t.Context(), `
SELECT cls.relname, att.attname, pg_get_constraintdef(con.oid)
FROM pg_constraint con
JOIN pg_class cls ON cls.oid = con.conrelid
JOIN pg_namespace ns ON ns.oid = cls.relnamespace
JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = con.conkey[1]
WHERE con.contype = 'c' AND cardinality(con.conkey) = 1 AND ns.nspname = current_schema()
ORDER BY 1, 2`)
	require.NoError(t, err)
	defer rows.Close()
	// PostgreSQL shows "col IN ('a', 'b')" as "(col = ANY (ARRAY['a'::text, 'b'::text]))".
	inList := regexp.MustCompile(`= ANY \(+ARRAY\[(.*)\]`)
	literal := regexp.MustCompile(`'((?:[^']|'')*)'::text`)
	out := map[string][]string{}
	for rows.Next() {
		var table, column, def string
		require.NoError(t, rows.Scan(&table, &column, &def))
		m := inList.FindStringSubmatch(def)
		if m == nil {
			continue // another kind of check (non-empty, a range, a pattern)
		}
		key := table + "." + column
		require.NotContains(t, out, key, "%s has two CHECK (... IN (...)) constraints", key)
		values := []string{}
		for _, l := range literal.FindAllStringSubmatch(m[1], -1) {
			values = append(values, strings.ReplaceAll(l[1], "''", "'"))
		}
		require.NotEmpty(t, values, "cannot read the values of %s: %s", key, def)
		out[key] = slices.Clip(values)
	}
	require.NoError(t, rows.Err())
	return out
}
