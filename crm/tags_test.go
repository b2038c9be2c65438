package crm_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
)

func tagsOf(t *testing.T, s *crm.Store, id string) []string {
	t.Helper()
	c, err := s.GetContact(t.Context(), id)
	require.NoError(t, err)
	return c.Tags
}

func TestSetTags(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	mustUpsert(t, s, contact("cus_1"))
	require.Nil(t, tagsOf(t, s, "cus_1"), "no tags: nil")

	// A set, sorted in byte order (as Go sorts; a collation that ignores
	// punctuation would put "a-c" after "ab").
	require.NoError(t, s.SetTags(ctx, "cus_1", []string{"webinar-2026", "ab", "a-c", "ab", "product:analytics"}, nil))
	want := []string{"a-c", "ab", "product:analytics", "webinar-2026"}
	require.Equal(t, want, tagsOf(t, s, "cus_1"))

	// A retry writes the same row; removing nothing keeps every tag.
	require.NoError(t, s.SetTags(ctx, "cus_1", []string{"webinar-2026", "ab", "a-c", "ab", "product:analytics"}, nil))
	require.NoError(t, s.SetTags(ctx, "cus_1", nil, nil))
	require.NoError(t, s.SetTags(ctx, "cus_1", []string{}, []string{}))
	require.Equal(t, want, tagsOf(t, s, "cus_1"))
	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM contacts`))

	// Add then remove; a tag in both is removed; removing an absent tag is
	// no error.
	require.NoError(t, s.SetTags(ctx, "cus_1", []string{"vip", "churn-risk"}, []string{"ab", "churn-risk", "never-had"}))
	require.Equal(t, []string{"a-c", "product:analytics", "vip", "webinar-2026"}, tagsOf(t, s, "cus_1"))

	// UpsertContact leaves the tags alone.
	mustUpsert(t, s, contact("cus_1"))
	require.Equal(t, []string{"a-c", "product:analytics", "vip", "webinar-2026"}, tagsOf(t, s, "cus_1"))

	// Removing every tag leaves none, read as nil.
	require.NoError(t, s.SetTags(ctx, "cus_1", nil, []string{"a-c", "product:analytics", "vip", "webinar-2026"}))
	require.Nil(t, tagsOf(t, s, "cus_1"))
	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM contacts WHERE customer_id = 'cus_1' AND tags = '{}'`))

	// Other contacts are untouched.
	mustUpsert(t, s, contact("cus_2"))
	require.NoError(t, s.SetTags(ctx, "cus_2", []string{"other"}, nil))
	require.Nil(t, tagsOf(t, s, "cus_1"))
}

func TestSetTagsRefusesWhatCannotBeStored(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	mustUpsert(t, s, contact("cus_1"))
	require.NoError(t, s.SetTags(ctx, "cus_1", []string{"kept"}, nil))

	requireInvalid(t, s.SetTags(ctx, "cus_1", []string{"ok", "Webinar"}, nil), "tags[1]")
	requireInvalid(t, s.SetTags(ctx, "cus_1", nil, []string{"has space"}), "remove_tags[0]")
	requireInvalid(t, s.SetTags(ctx, "cus_1", []string{strings.Repeat("a", customer.MaxTag+1)}, nil), "tags[0]")
	requireInvalid(t, s.SetTags(ctx, "cus_1", make([]string, customer.MaxTagsPerChange+1), nil), "tags")
	requireInvalid(t, s.SetTags(ctx, " ", []string{"x"}, nil), "customer_id")
	require.Equal(t, []string{"kept"}, tagsOf(t, s, "cus_1"))

	// Up to MaxTagsPerContact, in changes of MaxTagsPerChange.
	var all []string
	for i := range customer.MaxTagsPerContact {
		all = append(all, fmt.Sprintf("t%03d", i))
	}
	require.NoError(t, s.SetTags(ctx, "cus_1", nil, []string{"kept"}))
	for i := 0; i < len(all); i += customer.MaxTagsPerChange {
		require.NoError(t, s.SetTags(ctx, "cus_1", all[i:i+customer.MaxTagsPerChange], nil))
	}
	require.Equal(t, all, tagsOf(t, s, "cus_1"))
	// One more is refused, naming "tags", and writes nothing; one it has
	// already is fine, and so is a swap.
	err := s.SetTags(ctx, "cus_1", []string{"one-too-many"}, nil)
	requireInvalid(t, err, "tags")
	assert.Contains(t, err.Error(), fmt.Sprint(customer.MaxTagsPerContact))
	require.Equal(t, all, tagsOf(t, s, "cus_1"))
	require.NoError(t, s.SetTags(ctx, "cus_1", []string{"t000"}, nil))
	require.NoError(t, s.SetTags(ctx, "cus_1", []string{"swapped-in"}, []string{"t000"}))
	require.Len(t, tagsOf(t, s, "cus_1"), customer.MaxTagsPerContact)

	// No contact: not created.
	require.ErrorIs(t, s.SetTags(ctx, "nobody", []string{"x"}, nil), crm.ErrNotFound)
	require.Zero(t, count(t, s, `SELECT count(*) FROM contacts WHERE customer_id = 'nobody'`))
	// An erased contact stays blank.
	mustUpsert(t, s, contact("cus_gone"))
	require.NoError(t, s.Erase(ctx, "cus_gone"))
	require.ErrorIs(t, s.SetTags(ctx, "cus_gone", []string{"x"}, nil), crm.ErrErased)
	require.ErrorIs(t, s.SetTags(ctx, "cus_gone", nil, nil), crm.ErrErased)
	require.Nil(t, tagsOf(t, s, "cus_gone"))
}

// Concurrent changes of one contact all land: each is computed from the
// row it updates, not from a copy read before another change committed.
func TestSetTagsConcurrently(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	mustUpsert(t, s, contact("cus_1"))
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() { errs[i] = s.SetTags(t.Context(), "cus_1", []string{fmt.Sprintf("w%02d", i), "shared"}, nil) })
	}
	wg.Wait()
	want := []string{"shared"}
	for i, err := range errs {
		require.NoError(t, err, "writer %d", i)
		want = append(want, fmt.Sprintf("w%02d", i))
	}
	require.ElementsMatch(t, want, tagsOf(t, s, "cus_1"))
}

func TestSegmentPageByTags(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	for id, tags := range map[string][]string{
		"t1": {"webinar-2026", "vip"},
		"t2": {"webinar-2026"},
		"t3": {"vip"},
		"t4": nil,
		"t5": {"webinar-2026", "vip", "product:analytics"},
	} {
		c := contact(id)
		if id == "t5" {
			c.Stage = crm.StageNurture
		}
		mustUpsert(t, s, c)
		require.NoError(t, s.SetTags(ctx, id, tags, nil))
	}
	require.Equal(t, []string{"t1", "t2", "t5"}, ids(page(t, s, crm.SegmentQuery{Segment: crm.Segment{Tags: []string{"webinar-2026"}}})))
	// Every tag, not any of them.
	require.Equal(t, []string{"t1", "t5"}, ids(page(t, s, crm.SegmentQuery{Segment: crm.Segment{Tags: []string{"vip", "webinar-2026"}}})))
	require.Empty(t, page(t, s, crm.SegmentQuery{Segment: crm.Segment{Tags: []string{"nobody-has-it"}}}))
	// With the other filters (AND) and the keyset cursor.
	require.Equal(t, []string{"t5"}, ids(page(t, s, crm.SegmentQuery{After: "t1", Segment: crm.Segment{
		Tags: []string{"vip"}, Stages: []string{crm.StageNurture}, CustomerIDPrefix: "t"}})))

	_, err := s.SegmentPage(ctx, crm.SegmentQuery{Limit: 10, Segment: crm.Segment{Tags: []string{"vip", "VIP"}}})
	requireInvalid(t, err, "segment.tags[1]")
	_, err = s.SegmentPage(ctx, crm.SegmentQuery{Limit: 10, Segment: crm.Segment{Tags: make([]string, customer.MaxTagsPerChange+1)}})
	requireInvalid(t, err, "segment.tags")
}

// The segment of a rare tag over many contacts reads the tagged ones
// through contacts_tags_gin instead of walking every contact: the plan of
// the exact statement SegmentPage runs (a broadcast's page: the ledger
// join, the frequency cap and the minimum gap included), after ANALYZE.
func TestTagSegmentUsesTheIndex(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	const contacts, every = 100_000, 2_000 // 50 rare ones
	start := time.Now()
	_, err := s.Pool().Exec(ctx, `
INSERT INTO contacts (customer_id, email, consent, stage, tags)
SELECT format('bulk-%s', lpad(i::text, 6, '0')), format('bulk-%s@example.com', i), true, 'active',
    CASE WHEN i % $2 = 0 THEN ARRAY['rare-tag'] ELSE ARRAY['common-tag'] END
FROM generate_series(1, $1::int) AS i`, contacts, every)
	require.NoError(t, err)
	_, err = s.Pool().Exec(ctx, `ANALYZE contacts`)
	require.NoError(t, err)
	t.Logf("seeded and analysed %d contacts in %s", contacts, time.Since(start).Round(time.Millisecond))

	q := crm.SegmentQuery{
		Segment: crm.Segment{Tags: []string{"rare-tag"}}, Limit: 500, SendKeySuffix: "/broadcast/rare",
		Cap: &crm.MarketingCap{Max: 3, Window: 7 * 24 * time.Hour}, MinGap: 4 * time.Hour,
	}
	query, args := crm.SegmentPageQuery(q)
	var out string
	require.NoError(t, s.Pool().QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+query, args...).Scan(&out))
	var plan []struct {
		Plan planNode `json:"Plan"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &plan), out)
	require.Len(t, plan, 1)
	nodes := plan[0].Plan.flatten()
	var gin bool
	for _, n := range nodes {
		if n.NodeType == "Bitmap Index Scan" && n.IndexName == "contacts_tags_gin" {
			gin = true
		}
		assert.False(t, n.NodeType == "Seq Scan" && n.RelationName == "contacts", "a Seq Scan on contacts:\n%s", out)
	}
	assert.True(t, gin, "no Bitmap Index Scan on contacts_tags_gin:\n%s", out)

	// The page is exactly the tagged contacts.
	var want []string
	for i := every; i <= contacts; i += every {
		want = append(want, fmt.Sprintf("bulk-%06d", i))
	}
	rs, err := s.SegmentPage(ctx, q)
	require.NoError(t, err)
	require.Equal(t, want, ids(rs))

	// Statement after statement, it stays planned for its values: a cached
	// prepared statement would switch to a generic plan (blind to the tag,
	// walking the audience) after five runs on a connection.
	conn, err := s.Pool().Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	for range 8 {
		rows, err := conn.Query(ctx, query, args...)
		require.NoError(t, err)
		rows.Close()
		require.NoError(t, rows.Err())
	}
	var generic int
	require.NoError(t, conn.QueryRow(ctx,
		`SELECT COALESCE(sum(generic_plans), 0) FROM pg_prepared_statements WHERE statement = $1`, query).Scan(&generic))
	require.Zero(t, generic, "the tag segment's statement ran with a generic plan")
}

// planNode is a node of EXPLAIN (FORMAT JSON).
type planNode struct {
	NodeType     string     `json:"Node Type"`
	RelationName string     `json:"Relation Name"`
	IndexName    string     `json:"Index Name"`
	Plans        []planNode `json:"Plans"`
}

func (n planNode) flatten() []planNode {
	out := []planNode{n}
	for _, c := range n.Plans {
		out = append(out, c.flatten()...)
	}
	return out
}

// TestBroadcastStatementsProbeTheLedgerByKey: a broadcast's page query and
// its claims' policy read look up the send ledger and the suppression list
// by key, per recipient, never by reading either whole table: both grow
// with every send (a million recipients is a million ledger rows), and a
// page or a chunk that scans them makes a broadcast quadratic.
func TestBroadcastStatementsProbeTheLedgerByKey(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	const n = 50_000
	for _, q := range []string{`
INSERT INTO contacts (customer_id, email, consent, stage)
SELECT format('big-%s', lpad(i::text, 6, '0')), format('big-%s@example.com', i), true, 'active'
FROM generate_series(1, $1::int) AS i`, `
INSERT INTO email_log (send_key, customer_id, email, template, category, message_id, status, attempts, claimed_at, lease_until, sent_at)
SELECT format('big-%s/broadcast/old', lpad(i::text, 6, '0')), format('big-%s', lpad(i::text, 6, '0')), format('big-%s@example.com', i),
    'news', 'marketing', format('<m%s@example.com>', i), 'sent', 1, now(), now(), now() - interval '30 days'
FROM generate_series(1, $1::int) AS i`, `
INSERT INTO suppressions (email_hash, reason)
SELECT encode(sha256(convert_to(format('gone-%s@example.com', i), 'UTF8')), 'hex'), 'unsubscribed'
FROM generate_series(1, $1::int) AS i`} {
		_, err := s.Pool().Exec(ctx, q, n)
		require.NoError(t, err)
	}
	_, err := s.Pool().Exec(ctx, `ANALYZE`)
	require.NoError(t, err)

	noScan := func(name, query string, args ...any) {
		var out string
		require.NoError(t, s.Pool().QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+query, args...).Scan(&out))
		var plan []struct {
			Plan planNode `json:"Plan"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &plan), out)
		require.Len(t, plan, 1)
		for _, node := range plan[0].Plan.flatten() {
			assert.False(t, node.NodeType == "Seq Scan" && (node.RelationName == "email_log" || node.RelationName == "suppressions"),
				"%s: a Seq Scan on %s:\n%s", name, node.RelationName, out)
		}
	}
	query, args := crm.SegmentPageQuery(crm.SegmentQuery{
		Segment: crm.Segment{CustomerIDPrefix: "big-"}, After: "big-020000", Limit: 500, SendKeySuffix: "/broadcast/new",
		Cap: &crm.MarketingCap{Max: 3, Window: 7 * 24 * time.Hour}, MinGap: 4 * time.Hour,
	})
	noScan("segment page", query, args...)

	keys, customers, hashes, lookbacks := []string{}, []string{}, []string{}, []int64{}
	for i := 20_001; i <= 20_256; i++ {
		id := fmt.Sprintf("big-%06d", i)
		keys, customers = append(keys, id+"/broadcast/new"), append(customers, id)
		hashes, lookbacks = append(hashes, crm.HashEmail(fmt.Sprintf("big-%d@example.com", i))), append(lookbacks, (7*24*time.Hour).Microseconds())
	}
	noScan("contact policy read", crm.RecentMarketing, keys, customers, hashes, lookbacks)
	ats := make([]*time.Time, len(keys))
	noScan("mark sent", crm.MarkSentBatch, keys, ats)
}
