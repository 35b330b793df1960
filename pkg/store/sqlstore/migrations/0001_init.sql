-- Resources: one row per resource pointing at its current version; the
-- bodies live in resource_versions ({{JSON}}), one row per version.
CREATE TABLE resources (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    tenant   TEXT NOT NULL,
    version  BIGINT NOT NULL,
    deleted  {{BOOL}} NOT NULL,
    seq      BIGINT NOT NULL,
    PRIMARY KEY (res_type, res_id)
);
{{SEQUENCE}}
CREATE UNIQUE INDEX resources_by_seq ON resources (res_type, seq);
CREATE INDEX resources_by_tenant ON resources (tenant, res_type, seq);

CREATE TABLE resource_versions (
    res_type     TEXT NOT NULL,
    res_id       TEXT NOT NULL,
    version      BIGINT NOT NULL,
    tenant       TEXT NOT NULL,
    last_updated BIGINT NOT NULL, -- microseconds since the Unix epoch
    deleted      {{BOOL}} NOT NULL,
    body         {{JSON}} NOT NULL,
    PRIMARY KEY (res_type, res_id, version)
);

-- Search indexes, one table per parameter kind.
CREATE TABLE idx_token (
    res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
    sys TEXT NOT NULL, code TEXT NOT NULL,
    PRIMARY KEY (res_type, res_id, param, sys, code)
);
CREATE INDEX idx_token_lookup ON idx_token (res_type, param, code, sys);

CREATE TABLE idx_ref (
    res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL, ref TEXT NOT NULL,
    PRIMARY KEY (res_type, res_id, param, ref)
);
CREATE INDEX idx_ref_lookup ON idx_ref (res_type, param, ref);

CREATE TABLE idx_string (
    res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
    norm TEXT NOT NULL, raw TEXT NOT NULL,
    PRIMARY KEY (res_type, res_id, param, raw)
);
CREATE INDEX idx_string_lookup ON idx_string (res_type, param, norm{{PATTERN_OPS}});
CREATE INDEX idx_string_raw ON idx_string (res_type, param, raw);

CREATE TABLE idx_date (
    res_type TEXT NOT NULL, res_id TEXT NOT NULL, param TEXT NOT NULL,
    lo BIGINT NOT NULL, hi BIGINT NOT NULL,
    PRIMARY KEY (res_type, res_id, param, lo, hi)
);
CREATE INDEX idx_date_lookup ON idx_date (res_type, param, lo, hi);

-- Transactional outbox: rows written with the change they announce.
CREATE TABLE outbox (
    seq        {{SERIAL}},
    msg_key    TEXT NOT NULL,
    subject    TEXT NOT NULL,
    msg_id     TEXT NOT NULL,
    headers    TEXT NOT NULL,
    data       {{BYTES}} NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at    BIGINT
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- Inbox: the messages each consumer has handled.
CREATE TABLE inbox (
    consumer   TEXT NOT NULL,
    msg_id     TEXT NOT NULL,
    handled_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, msg_id)
);
CREATE INDEX inbox_by_time ON inbox (handled_at);

-- Durable timers, claimed under a lease.
CREATE TABLE timers (
    tkey        TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    due         BIGINT NOT NULL,
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT,
    fired_at    BIGINT
);
CREATE INDEX timers_due ON timers (due) WHERE state = 'pending';

CREATE TABLE leases (
    name  TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until BIGINT NOT NULL
);

-- Audit trail, a hash chain.
CREATE TABLE audit (
    seq       BIGINT PRIMARY KEY,
    tenant    TEXT NOT NULL,
    at        BIGINT NOT NULL,
    agent     TEXT NOT NULL,
    action    TEXT NOT NULL,
    entity    TEXT NOT NULL,
    patient   TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_by_patient ON audit (patient, seq);
