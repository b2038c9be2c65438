-- Signatures of HTTP API requests already accepted (api/auth.go), shared by
-- every API replica and kept across restarts, so that a replayed request
-- is refused wherever it lands. A row is only needed until its expiry
-- (the request's timestamp plus the API's tolerance): after that the
-- timestamp check refuses the signature anyway, and a sweep deletes it.
--
-- UNLOGGED: a row lives five minutes, and writing one to the WAL (and
-- waiting for the disk) on every API request cost a fifth of the API's
-- event rate. The price: a crash of PostgreSQL itself empties the table
-- (and a standby does not have it), so replays of the last five minutes'
-- requests would be accepted once after such a crash — harmless, as a
-- replayed signup is a profile update and a replayed event is deduplicated
-- by its id, and the same as while the database is away (docs/api.md).

-- +goose Up
CREATE UNLOGGED TABLE api_replays (
    signature  text        PRIMARY KEY CHECK (signature <> ''),
    expires_at timestamptz NOT NULL
);
CREATE INDEX api_replays_expires_idx ON api_replays (expires_at);

-- +goose Down
DROP TABLE api_replays;
