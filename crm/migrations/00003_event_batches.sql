-- Events remember the call that recorded them (the journey run and its
-- batch), so that a retry of that call — a local activity re-run after its
-- workflow task failed, an activity retried after the database committed
-- but before the answer reached Temporal — is told the same ids are new
-- again, instead of "already recorded" (which would drop them).

-- +goose Up
ALTER TABLE events ADD COLUMN recorded_by text;

-- +goose Down
ALTER TABLE events DROP COLUMN recorded_by;
