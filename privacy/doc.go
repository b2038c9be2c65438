// Package privacy encrypts the payloads that Temporal stores (workflow and
// activity inputs and results, signals, queries, memos, failure messages)
// so that a customer's personal data can be erased from every copy of the
// histories — live, archived, in backups — by crypto-shredding: each
// payload is encrypted with AES-256-GCM under a data key of its subject,
// and erasing a customer destroys the customer's data key.
//
// # Subjects and keys
//
// The subject of a payload is the customer id when the payload belongs to
// a customer's journey (workflow ID "journey/<customer id>", its
// activities and its children's contexts alike), and SystemSubject for
// everything else (broadcasts, schedules, calls without a workflow context).
// Each subject has one random 256-bit data key, created on first use and
// stored in the PostgreSQL table payload_keys wrapped (AES-256-GCM, the
// subject as additional data) by a key-encryption key (KEK) that comes from
// the environment and is never stored; rows name it by a hash (KEK.ID).
// Keyring.Previous lets the KEK rotate: Keys.Rewrap rewraps the stored keys
// with the current one.
//
// Keys.Shred destroys a subject's key: the row keeps no key and records
// when it was shredded, so the subject's payloads no longer decrypt
// (ErrShredded) and no new payload is encrypted for it, rather than being
// encrypted under a fresh key that erasure never saw.
//
// # Cache
//
// Keys caches unwrapped keys per process for Keys.CacheTTL (one minute):
// that is how long an erasure by another process takes to be noticed here.
// When the database cannot be reached, expired entries are used on, so an
// outage of PostgreSQL does not stop running journeys; a subject never seen
// by the process needs the database.
//
// # Payloads
//
// Codec is the payload codec. An encrypted payload has the encoding
// "binary/encrypted", names its subject and cipher in its metadata, and
// holds nonce || ciphertext of the whole original payload (metadata
// included), with the subject as additional data. Decoding reads the
// subject from the payload, not from the serialization context, so any
// payload decodes anywhere (a worker, the codec server); payloads that are
// not encrypted (histories written before, search attributes) pass
// through unchanged.
//
// # Failures
//
// FailureConverter is Temporal's default failure converter with
// EncodeCommonAttributes: error messages and stack traces, which often
// quote addresses, travel in an encrypted payload instead of the
// failure's plain message field. Protect sets both converters on a
// client's options.
//
// # Codec server
//
// CodecServer serves Temporal's remote codec protocol over HTTP, so that
// the Web UI (--ui-codec-endpoint) and `temporal workflow show
// --codec-endpoint` can show decrypted payloads; without a token it serves
// loopback clients only.
package privacy
