-- Signatures of HTTP API requests already accepted (api/auth.go), shared by
-- every API replica and kept across restarts, so that a replayed request
-- is refused wherever it lands. A row is only needed until its expiry
-- (the request's timestamp plus the API's tolerance): after that the
-- timestamp check refuses the signature anyway, and a sweep deletes it.
-- (00004 and 00005 are taken by migrations written alongside this one.)

-- +goose Up
CREATE TABLE api_replays (
    signature  text        PRIMARY KEY CHECK (signature <> ''),
    expires_at timestamptz NOT NULL
);
CREATE INDEX api_replays_expires_idx ON api_replays (expires_at);

-- +goose Down
DROP TABLE api_replays;
