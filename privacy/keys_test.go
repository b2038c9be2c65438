package privacy

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/proto"
)

func TestShredMakesACustomersPayloadsUnreadable(t *testing.T) {
	pool := newPool(t)
	ring := Keyring{Current: newKEK(t)}
	keys := NewKeys(pool, ring)
	codec := NewCodec(keys)
	p1 := encodeOne(t, forJourney(codec, "c1"), jsonPayload(t, profile{"c1", "pat@example.com"}))
	p2 := encodeOne(t, forJourney(codec, "c2"), jsonPayload(t, profile{"c2", "sam@example.com"}))
	// Both keys are cached in keys now.
	_, err := decodeOne(codec, p1)
	require.NoError(t, err)

	destroyed, err := keys.Shred(t.Context(), "c1")
	require.NoError(t, err)
	require.True(t, destroyed)

	var wrappedIsNull, kekIsNull, shredded bool
	require.NoError(t, pool.QueryRow(t.Context(), `
SELECT wrapped_key IS NULL, kek_id IS NULL, shredded_at IS NOT NULL FROM payload_keys WHERE subject = 'c1'`,
	).Scan(&wrappedIsNull, &kekIsNull, &shredded))
	require.True(t, wrappedIsNull && kekIsNull && shredded)

	// The same instance (its cache) and a fresh one (the database) agree.
	for name, c := range map[string]*Codec{"same": codec, "fresh": NewCodec(NewKeys(pool, ring))} {
		_, err = decodeOne(c, p1)
		require.ErrorIs(t, err, ErrShredded, name)
		require.ErrorContains(t, err, `"c1"`, name)
		_, err = decodeOne(c, p2)
		require.NoError(t, err, name)
		_, err = forJourney(c, "c1").Encode([]*commonpb.Payload{jsonPayload(t, "new")})
		require.ErrorIs(t, err, ErrShredded, name)
	}

	destroyed, err = keys.Shred(t.Context(), "c1")
	require.NoError(t, err)
	require.False(t, destroyed)
}

func TestShredOfAnUnknownSubjectRefusesItAKeyLater(t *testing.T) {
	pool := newPool(t)
	ring := Keyring{Current: newKEK(t)}
	destroyed, err := NewKeys(pool, ring).Shred(t.Context(), "never-seen")
	require.NoError(t, err)
	require.False(t, destroyed)

	_, err = NewKeys(pool, ring).AEAD(t.Context(), "never-seen", true)
	require.ErrorIs(t, err, ErrShredded)
}

func TestShredRefusesTheSystemSubject(t *testing.T) {
	keys := NewKeys(newPool(t), Keyring{Current: newKEK(t)})
	_, err := keys.AEAD(t.Context(), SystemSubject, true)
	require.NoError(t, err)
	_, err = keys.Shred(t.Context(), SystemSubject)
	require.ErrorContains(t, err, "system subject")
	_, err = keys.AEAD(t.Context(), SystemSubject, false)
	require.NoError(t, err)
}

func TestShredReachesOtherProcessesWithinTheTTL(t *testing.T) {
	pool := newPool(t)
	ring := Keyring{Current: newKEK(t)}
	eraser := NewKeys(pool, ring)
	worker := NewKeys(pool, ring)
	worker.CacheTTL = 50 * time.Millisecond
	codec := NewCodec(worker)
	p := encodeOne(t, forJourney(codec, "c1"), jsonPayload(t, "x"))

	_, err := eraser.Shred(t.Context(), "c1")
	require.NoError(t, err)
	// Within the TTL the worker still has the key...
	_, err = decodeOne(codec, p)
	require.NoError(t, err)
	// ... after it, it asks the database.
	time.Sleep(60 * time.Millisecond)
	_, err = decodeOne(codec, p)
	require.ErrorIs(t, err, ErrShredded)
}

func TestProcessesRacingToCreateAKeyGetTheSameOne(t *testing.T) {
	pool := newPool(t)
	ring := Keyring{Current: newKEK(t)}
	const n = 8
	encoded := make([]*commonpb.Payload, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			out, err := forJourney(NewCodec(NewKeys(pool, ring)), "c1").Encode([]*commonpb.Payload{jsonPayload(t, i)})
			errs[i] = err
			if err == nil {
				encoded[i] = out[0]
			}
		})
	}
	wg.Wait()
	reader := NewCodec(NewKeys(pool, ring))
	for i := range n {
		require.NoError(t, errs[i])
		_, err := decodeOne(reader, encoded[i])
		require.NoError(t, err, "payload %d", i)
	}
}

func TestAKeyCopiedToAnotherSubjectDoesNotUnwrap(t *testing.T) {
	pool := newPool(t)
	ring := Keyring{Current: newKEK(t)}
	keys := NewKeys(pool, ring)
	for _, s := range []string{"c1", "c2"} {
		_, err := keys.AEAD(t.Context(), s, true)
		require.NoError(t, err)
	}
	_, err := pool.Exec(t.Context(), `
UPDATE payload_keys SET wrapped_key = (SELECT wrapped_key FROM payload_keys WHERE subject = 'c1') WHERE subject = 'c2'`)
	require.NoError(t, err)
	_, err = NewKeys(pool, ring).AEAD(t.Context(), "c2", false)
	require.ErrorContains(t, err, `load data key of "c2": unwrap`)
}

func TestRewrapMovesKeysToTheCurrentKEK(t *testing.T) {
	pool := newPool(t)
	kek1, kek2 := newKEK(t), newKEK(t)
	codec1 := NewCodec(NewKeys(pool, Keyring{Current: kek1}))
	var old []*commonpb.Payload
	for _, c := range []string{"c1", "c2", "c3"} {
		old = append(old, encodeOne(t, forJourney(codec1, c), jsonPayload(t, c)))
	}
	_, err := NewKeys(pool, Keyring{Current: kek1}).Shred(t.Context(), "c3")
	require.NoError(t, err)

	n, err := NewKeys(pool, Keyring{Current: kek2, Previous: []KEK{kek1}}).Rewrap(t.Context())
	require.NoError(t, err)
	require.Equal(t, 2, n) // c1 and c2; c3 has no key left
	var rotated int
	require.NoError(t, pool.QueryRow(t.Context(),
		`SELECT count(*) FROM payload_keys WHERE kek_id = $1 AND rotated_at IS NOT NULL`, kek2.ID()).Scan(&rotated))
	require.Equal(t, 2, rotated)

	only2 := NewCodec(NewKeys(pool, Keyring{Current: kek2}))
	for i, p := range old[:2] {
		dec, err := decodeOne(only2, p)
		require.NoError(t, err)
		require.True(t, proto.Equal(jsonPayload(t, []string{"c1", "c2"}[i]), dec))
	}
	_, err = decodeOne(NewCodec(NewKeys(pool, Keyring{Current: kek1})), old[0])
	require.ErrorContains(t, err, "KEK "+kek2.ID()+", which is not in the keyring")

	n, err = NewKeys(pool, Keyring{Current: kek2}).Rewrap(t.Context())
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestRewrapNamesAKeyItCannotUnwrap(t *testing.T) {
	pool := newPool(t)
	kek1, kek2, kek3 := newKEK(t), newKEK(t), newKEK(t)
	_, err := NewKeys(pool, Keyring{Current: kek1}).AEAD(t.Context(), "c1", true)
	require.NoError(t, err)
	_, err = NewKeys(pool, Keyring{Current: kek3, Previous: []KEK{kek2}}).Rewrap(t.Context())
	require.ErrorContains(t, err, `"c1"`)
	require.ErrorContains(t, err, kek1.ID())
}

func TestRewrapWorksInBatches(t *testing.T) {
	pool := newPool(t)
	kek1, kek2 := newKEK(t), newKEK(t)
	keys1 := NewKeys(pool, Keyring{Current: kek1})
	const total = rewrapBatch + 3
	for i := range total {
		_, err := keys1.create(t.Context(), fmt.Sprintf("c%04d", i))
		require.NoError(t, err)
	}
	n, err := NewKeys(pool, Keyring{Current: kek2, Previous: []KEK{kek1}}).Rewrap(t.Context())
	require.NoError(t, err)
	require.Equal(t, total, n)
}

func TestAnExpiredKeyIsUsedWhileTheDatabaseIsDown(t *testing.T) {
	url, pool := newDatabase(t)
	ring := Keyring{Current: newKEK(t)}
	p := encodeOne(t, forJourney(NewCodec(NewKeys(pool, ring)), "c1"), jsonPayload(t, "x"))

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	own, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	keys := NewKeys(own, ring)
	keys.CacheTTL = time.Nanosecond
	codec := NewCodec(keys)
	_, err = decodeOne(codec, p)
	require.NoError(t, err)
	_, err = forJourney(codec, "c2").Encode([]*commonpb.Payload{jsonPayload(t, "y")})
	require.NoError(t, err)

	own.Close()
	time.Sleep(time.Millisecond)
	_, err = decodeOne(codec, p)
	require.NoError(t, err)
	_, err = forJourney(codec, "c2").Encode([]*commonpb.Payload{jsonPayload(t, "z")})
	require.NoError(t, err)
	// A subject never cached needs the database.
	_, err = forJourney(codec, "c3").Encode([]*commonpb.Payload{jsonPayload(t, "z")})
	require.ErrorContains(t, err, "closed pool")
}

func TestCacheStaysBounded(t *testing.T) {
	c := cache{max: 10}
	past, future := time.Now().Add(-time.Second), time.Now().Add(time.Hour)
	for i := range 5 {
		c.put(string(rune('a'+i)), entry{expires: past})
	}
	for i := range 5 {
		c.put(string(rune('A'+i)), entry{expires: future})
	}
	c.put("new", entry{expires: future})
	require.Len(t, c.m, 6, "the expired entries go first")
	_, ok := c.get("A")
	require.True(t, ok)

	for i := range 20 {
		c.put(string(rune('0'+i)), entry{expires: future})
		require.LessOrEqual(t, len(c.m), 10)
	}
}

func TestCacheNeverBringsBackAShreddedKey(t *testing.T) {
	var c cache
	c.max = 10
	c.put("c1", entry{shredded: true})
	got := c.put("c1", entry{aead: nil, expires: time.Now().Add(time.Hour)})
	require.True(t, got.shredded)
	_, err := got.result("c1")
	require.ErrorIs(t, err, ErrShredded)
}
