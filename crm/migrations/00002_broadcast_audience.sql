-- Indexes for broadcasts (broadcast/ and crm/segments.go): a broadcast pages
-- through the marketing audience of a segment in customer_id order (keyset
-- pagination), so the scans it makes are "the next N contacts after this
-- customer_id that may receive marketing mail", optionally of some stages.
--
-- The per-recipient frequency cap counts recent marketing sends with the
-- existing email_log_cap_idx (customer_id, category, sent_at) WHERE status =
-- 'sent' from 00001 (an index-only scan per recipient); the suppression list
-- is probed by its primary key with the hash computed in SQL.

-- +goose Up
-- The marketing audience in key order: erased tombstones, contacts without
-- consent and contacts without an address are left out of the index, so a
-- page never walks over them.
CREATE INDEX contacts_audience_idx ON contacts (customer_id)
    WHERE erased_at IS NULL AND consent AND email <> '';

-- Segments by stage: the audience of one stage in key order.
CREATE INDEX contacts_audience_stage_idx ON contacts (stage, customer_id)
    WHERE erased_at IS NULL AND consent AND email <> '';

-- +goose Down
DROP INDEX contacts_audience_stage_idx;
DROP INDEX contacts_audience_idx;
