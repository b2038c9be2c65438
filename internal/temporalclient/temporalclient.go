// Package temporalclient builds the Temporal client options every process
// of the product dials with — worker, API, starter, end-to-end tests and the
// benchmark — so that all of them encrypt and decrypt payloads the same way
// (package privacy). A process whose converter differed from the worker's
// would write payloads the worker cannot read, or read ciphertext.
package temporalclient

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"github.com/acme/lifecycle/config"
	"github.com/acme/lifecycle/privacy"
)

// keyPoolConns bounds the connections of the data-key pool: keys are
// cached, so lookups are rare (a customer's first payload, then once per
// privacy.Keys cache period).
const keyPoolConns = 4

// Encryption is the payload encryption of one process: the data-key store
// on a small database pool of its own and the codec over it.
type Encryption struct {
	Keys  *privacy.Keys
	Codec *privacy.Codec
	pool  *pgxpool.Pool
}

// NewEncryption opens the data-key store on cfg's CRM database (lazily: no
// connection is made until a key is needed) with cfg's key-encryption keys.
func NewEncryption(cfg config.Config) (*Encryption, error) {
	ring, err := cfg.Payload.Keyring()
	if err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL.Value())
	if err != nil {
		// pgx masks the password in its parse errors.
		return nil, fmt.Errorf("data-key store: parse DATABASE_URL: %w", err)
	}
	pc.MaxConns = keyPoolConns
	// pgxpool dials on first use, not here.
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("data-key store: %w", err)
	}
	keys := privacy.NewKeys(pool, ring)
	return &Encryption{Keys: keys, Codec: privacy.NewCodec(keys), pool: pool}, nil
}

// Pool is the data-key store's database pool.
func (e *Encryption) Pool() *pgxpool.Pool { return e.pool }

// Close releases the database pool.
func (e *Encryption) Close() { e.pool.Close() }

// Options are cfg's Temporal client options (TLS and credentials
// included) with the payload and failure converters of e; callers add
// their logger and metrics.
func (e *Encryption) Options(cfg config.Temporal) (client.Options, error) {
	opts, err := cfg.ClientOptions()
	if err != nil {
		return client.Options{}, err
	}
	privacy.Protect(&opts, e.Codec)
	return opts, nil
}
