package privacy

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrShredded means the subject's data key was destroyed: the customer was
// erased. Their payloads can no longer be decrypted, and no new payload is
// encrypted for them.
var ErrShredded = errors.New("data key destroyed (customer erased)")

// ErrNoKey means no data key is stored for the subject, when decoding (a
// payload encrypted under a key that is not in this database).
var ErrNoKey = errors.New("no data key stored")

const (
	// dataKeySize is AES-256.
	dataKeySize = 32
	// defaultCacheTTL: see Keys.CacheTTL.
	defaultCacheTTL = time.Minute
	// maxCacheEntries bounds the cache; an entry is about 1 KiB (the AES
	// key schedule and GHASH tables of a ready cipher).
	maxCacheEntries = 100_000
)

// Keys is the store of data keys: one random AES-256 key per subject, kept
// in PostgreSQL (table payload_keys) wrapped by the keyring's KEK, with an
// in-process cache of the unwrapped keys as ready ciphers. It is safe for
// concurrent use.
type Keys struct {
	// CacheTTL is how long a cached key (or the knowledge that it was
	// shredded) is used without asking PostgreSQL again. It is short
	// because it is how long an erasure made by another process takes to
	// reach this one: until then this process still encrypts and decrypts
	// with the destroyed key. Shred evicts at once in its own process. Set
	// it before the first use; it defaults to one minute.
	CacheTTL time.Duration

	pool  *pgxpool.Pool
	ring  Keyring
	cache cache
}

// NewKeys returns the key store on pool; ring's current KEK wraps the keys
// it creates, and any KEK of ring unwraps.
func NewKeys(pool *pgxpool.Pool, ring Keyring) *Keys {
	return &Keys{
		CacheTTL: defaultCacheTTL,
		pool:     pool,
		ring:     ring,
		cache:    cache{max: maxCacheEntries},
	}
}

// AEAD returns the subject's data key as a ready AES-256-GCM cipher. When
// create is true and no key is stored, a new random key is stored first
// (INSERT ... ON CONFLICT DO NOTHING, then read: processes racing to create
// it all end up with the one that was stored). A shredded subject gives
// ErrShredded, also when create is true: an erased customer never gets a
// fresh key. With create false and no key stored, it gives ErrNoKey.
//
// When the cached entry has expired and PostgreSQL cannot be asked (any
// error but ErrNoKey and ErrShredded), the expired entry is used for
// another CacheTTL: an outage of the database must not stop running
// journeys, and an erasure cannot happen without the database anyway.
func (k *Keys) AEAD(ctx context.Context, subject string, create bool) (cipher.AEAD, error) {
	if subject == "" {
		return nil, errors.New("data key: empty subject")
	}
	now := time.Now()
	cached, ok := k.cache.get(subject)
	if ok && now.Before(cached.expires) {
		return cached.result(subject)
	}
	e, err := k.load(ctx, subject, create)
	switch {
	case err == nil:
		e.expires = now.Add(k.ttl())
		return k.cache.put(subject, e).result(subject)
	case errors.Is(err, ErrNoKey):
		// The row is gone: forget the key rather than use it forever.
		k.cache.drop(subject)
		return nil, err
	case ok:
		cached.expires = now.Add(k.ttl())
		return k.cache.put(subject, cached).result(subject)
	default:
		return nil, err
	}
}

func (k *Keys) ttl() time.Duration {
	if k.CacheTTL <= 0 {
		return defaultCacheTTL
	}
	return k.CacheTTL
}

// load reads the subject's key from PostgreSQL, creating it when asked.
// A shredded key is an entry with shredded set, not an error, so that it is
// cached like a key.
func (k *Keys) load(ctx context.Context, subject string, create bool) (entry, error) {
	kekID, wrapped, err := k.read(ctx, subject)
	if errors.Is(err, ErrNoKey) && create {
		var aead cipher.AEAD
		aead, err = k.create(ctx, subject)
		if err != nil || aead != nil {
			return entry{aead: aead}, err
		}
		// Another process stored a key (or shredded the subject) first.
		kekID, wrapped, err = k.read(ctx, subject)
	}
	if err != nil {
		return entry{}, err
	}
	if wrapped == nil {
		return entry{shredded: true}, nil
	}
	kek, ok := k.ring.byID(kekID)
	if !ok {
		return entry{}, fmt.Errorf("load data key of %q: it is wrapped by KEK %s, which is not in the keyring", subject, kekID)
	}
	dataKey, err := kek.unwrap(subject, wrapped)
	if err != nil {
		return entry{}, fmt.Errorf("load data key of %q: unwrap with KEK %s: %w", subject, kekID, err)
	}
	aead, err := newGCM(dataKey)
	if err != nil {
		return entry{}, fmt.Errorf("load data key of %q: %w", subject, err)
	}
	return entry{aead: aead}, nil
}

// read returns the stored row of subject: wrapped is nil when the key was
// shredded; no row is ErrNoKey.
func (k *Keys) read(ctx context.Context, subject string) (kekID string, wrapped []byte, err error) {
	var id *string
	err = k.pool.QueryRow(ctx,
		`SELECT kek_id, wrapped_key FROM payload_keys WHERE subject = $1`, subject,
	).Scan(&id, &wrapped)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, fmt.Errorf("load data key of %q: %w", subject, ErrNoKey)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return "", nil, fmt.Errorf("load data key of %q: %w (the database at DATABASE_URL has no CRM schema yet: the worker creates it when it starts)", subject, err)
	}
	if err != nil {
		return "", nil, fmt.Errorf("load data key of %q: %w", subject, err)
	}
	if id != nil {
		kekID = *id
	}
	return kekID, wrapped, nil
}

// create stores a new random key for subject unless a row exists. It
// returns the new key's cipher when it was stored, nil (and no error) when
// another row won.
func (k *Keys) create(ctx context.Context, subject string) (cipher.AEAD, error) {
	dataKey := make([]byte, dataKeySize)
	if _, err := rand.Read(dataKey); err != nil {
		return nil, fmt.Errorf("create data key of %q: %w", subject, err)
	}
	aead, err := newGCM(dataKey)
	if err != nil {
		return nil, fmt.Errorf("create data key of %q: %w", subject, err)
	}
	wrapped, err := k.ring.Current.wrap(subject, dataKey)
	if err != nil {
		return nil, fmt.Errorf("create data key of %q: %w", subject, err)
	}
	tag, err := k.pool.Exec(ctx, `
INSERT INTO payload_keys (subject, kek_id, wrapped_key) VALUES ($1, $2, $3)
ON CONFLICT (subject) DO NOTHING`, subject, k.ring.Current.ID(), wrapped)
	if err != nil {
		return nil, fmt.Errorf("create data key of %q: %w", subject, err)
	}
	if tag.RowsAffected() == 0 {
		return nil, nil
	}
	return aead, nil
}
