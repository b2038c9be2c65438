-- An event id is unique per customer, not across all customers: two
-- product systems (or two customers' CRMs) may well number their events
-- alike, and the same id sent for two customers is two events. The log's
-- key becomes (customer_id, event_id); a customer's journey dedupes on it.

-- +goose Up
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (customer_id, event_id);

-- +goose Down
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (event_id);
