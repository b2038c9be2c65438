-- Personal data in Temporal histories is encrypted with a data key per
-- customer (package privacy); the keys live here, each wrapped (AES-256-GCM)
-- by the key-encryption key named by kek_id, which is never stored. Erasing
-- a customer destroys the key: wrapped_key becomes NULL and shredded_at is
-- set, so every copy of the customer's payloads — in histories, archives and
-- backups of Temporal — can no longer be read, and a new payload for that
-- customer is refused instead of getting a fresh key. The subject is a
-- customer id, or "system" for payloads of no one customer (broadcasts).
--
-- erasures is the audit log of erase requests. It holds no personal data:
-- the customer id (a pseudonymous key of ours), who asked, when, and what
-- each step did.

-- +goose Up
CREATE TABLE payload_keys (
    subject     text PRIMARY KEY CHECK (subject <> ''),
    kek_id      text,
    wrapped_key bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    rotated_at  timestamptz,
    shredded_at timestamptz,
    CHECK ((wrapped_key IS NULL) = (shredded_at IS NOT NULL)),
    CHECK ((wrapped_key IS NULL) = (kek_id IS NULL))
);
-- Rotation rewraps the keys that an older key-encryption key wrapped.
CREATE INDEX payload_keys_kek ON payload_keys (kek_id) WHERE kek_id IS NOT NULL;

CREATE TABLE erasures (
    id           bigserial PRIMARY KEY,
    customer_id  text NOT NULL,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    journey      text NOT NULL,
    crm          text NOT NULL,
    data_key     text NOT NULL
);
CREATE INDEX erasures_customer ON erasures (customer_id);

-- +goose Down
DROP TABLE erasures;
DROP TABLE payload_keys;
