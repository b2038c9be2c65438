-- The CRM schema: contacts and their timeline (events, stage transitions,
-- score history, handoffs, tasks), the email send ledger and the
-- suppression list. Every table that a retried activity writes to has a
-- unique business key so that a retry never writes a second row.

-- +goose Up
CREATE TABLE contacts (
    customer_id          text        PRIMARY KEY CHECK (customer_id <> ''),
    email                text        NOT NULL DEFAULT '',
    first_name           text        NOT NULL DEFAULT '',
    last_name            text        NOT NULL DEFAULT '',
    company              text        NOT NULL DEFAULT '',
    role                 text        NOT NULL DEFAULT '',
    company_size         integer     NOT NULL DEFAULT 0 CHECK (company_size >= 0),
    time_zone            text        NOT NULL DEFAULT '',
    lead_source          text        NOT NULL DEFAULT ''
        CHECK (lead_source IN ('', 'current_customer', 'referral', 'connected', 'expert', 'search_ads', 'cold')),
    owner_email          text        NOT NULL DEFAULT '',
    delivery_owner_email text        NOT NULL DEFAULT '',
    consent              boolean     NOT NULL DEFAULT false,
    stage                text        NOT NULL DEFAULT '',
    stage_changed_at     timestamptz,
    score                integer     NOT NULL DEFAULT 0,
    score_changed_at     timestamptz,
    campaign_id          text        NOT NULL DEFAULT '',
    campaign_version     text        NOT NULL DEFAULT '',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    erased_at            timestamptz
);
CREATE INDEX contacts_stage_score_idx ON contacts (stage, score);
CREATE INDEX contacts_email_idx ON contacts (lower(email)) WHERE email <> '';

CREATE TABLE events (
    event_id       text        PRIMARY KEY CHECK (event_id <> ''),
    customer_id    text        NOT NULL CHECK (customer_id <> ''),
    type           text        NOT NULL CHECK (type <> ''),
    occurred_at    timestamptz NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    properties     jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(properties) = 'object'),
    ignored_reason text
);
CREATE INDEX events_customer_idx ON events (customer_id, occurred_at);

CREATE TABLE stage_transitions (
    id             bigserial   PRIMARY KEY,
    transition_key text        NOT NULL UNIQUE CHECK (transition_key <> ''),
    customer_id    text        NOT NULL REFERENCES contacts (customer_id),
    from_stage     text        NOT NULL DEFAULT '',
    to_stage       text        NOT NULL CHECK (to_stage <> ''),
    reason         text        NOT NULL DEFAULT '',
    campaign_id    text        NOT NULL DEFAULT '',
    campaign_version text      NOT NULL DEFAULT '',
    at             timestamptz NOT NULL
);
CREATE INDEX stage_transitions_customer_idx ON stage_transitions (customer_id, at);

CREATE TABLE score_history (
    id          bigserial   PRIMARY KEY,
    score_key   text        NOT NULL UNIQUE CHECK (score_key <> ''),
    customer_id text        NOT NULL REFERENCES contacts (customer_id),
    score       integer     NOT NULL,
    behaviour   integer     NOT NULL DEFAULT 0,
    fit         integer     NOT NULL DEFAULT 0,
    reason      text        NOT NULL DEFAULT '',
    at          timestamptz NOT NULL
);
CREATE INDEX score_history_customer_idx ON score_history (customer_id, at);

CREATE TABLE handoffs (
    handoff_key text        PRIMARY KEY CHECK (handoff_key <> ''),
    customer_id text        NOT NULL REFERENCES contacts (customer_id),
    score       integer     NOT NULL,
    reasons     jsonb       NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(reasons) = 'array'),
    owner_email text        NOT NULL DEFAULT '',
    sla_due_at  timestamptz,
    status      text        NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'accepted', 'escalated', 'won', 'lost', 'rejected')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX handoffs_customer_idx ON handoffs (customer_id);
CREATE INDEX handoffs_open_idx ON handoffs (sla_due_at) WHERE status IN ('open', 'escalated');

CREATE TABLE tasks (
    task_key    text        PRIMARY KEY CHECK (task_key <> ''),
    customer_id text        NOT NULL REFERENCES contacts (customer_id),
    owner_email text        NOT NULL DEFAULT '',
    kind        text        NOT NULL CHECK (kind <> ''),
    title       text        NOT NULL DEFAULT '',
    due_at      timestamptz,
    status      text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'cancelled')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_customer_idx ON tasks (customer_id);
CREATE INDEX tasks_owner_open_idx ON tasks (owner_email, due_at) WHERE status = 'open';

CREATE TABLE email_log (
    send_key    text        PRIMARY KEY CHECK (send_key <> ''),
    customer_id text        NOT NULL CHECK (customer_id <> ''),
    email       text        NOT NULL DEFAULT '',
    template    text        NOT NULL CHECK (template <> ''),
    category    text        NOT NULL CHECK (category IN ('marketing', 'transactional')),
    message_id  text        NOT NULL CHECK (message_id <> ''),
    status      text        NOT NULL CHECK (status IN ('claimed', 'sent', 'failed', 'suppressed')),
    permanent   boolean     NOT NULL DEFAULT false,
    attempts    integer     NOT NULL DEFAULT 1 CHECK (attempts >= 0),
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    error       text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_log_customer_idx ON email_log (customer_id, created_at);
-- The per-customer frequency cap counts recent marketing sends.
CREATE INDEX email_log_cap_idx ON email_log (customer_id, category, sent_at) WHERE status = 'sent';

CREATE TABLE suppressions (
    email_hash  text        PRIMARY KEY CHECK (email_hash ~ '^[0-9a-f]{64}$'),
    reason      text        NOT NULL CHECK (reason IN ('unsubscribed', 'bounced', 'complained', 'erased', 'invalid')),
    customer_id text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE suppressions;
DROP TABLE email_log;
DROP TABLE tasks;
DROP TABLE handoffs;
DROP TABLE score_history;
DROP TABLE stage_transitions;
DROP TABLE events;
DROP TABLE contacts;
