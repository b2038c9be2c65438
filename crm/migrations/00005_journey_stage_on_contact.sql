-- The contact row says which journey instance owns the customer now and how
-- many stage changes it has made (stage_seq), written with the stage by
-- RecordTransition. The send ledger's claim reads them: a marketing email
-- planned in an earlier stage of the same journey (a nurture email still
-- retrying when the purchase arrived) is cancelled instead of sent.

-- +goose Up
ALTER TABLE contacts ADD COLUMN journey text NOT NULL DEFAULT '';
ALTER TABLE contacts ADD COLUMN stage_seq integer NOT NULL DEFAULT 0 CHECK (stage_seq >= 0);

-- +goose Down
ALTER TABLE contacts DROP COLUMN stage_seq;
ALTER TABLE contacts DROP COLUMN journey;
