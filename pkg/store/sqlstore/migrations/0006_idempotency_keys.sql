-- Idempotency keys of client requests (Idempotency-Key), per caller: a
-- request's key is inserted in the transaction of its first write, its
-- answer (status 0 until then) stored after, and replayed to a retry.
CREATE TABLE idempotency_keys (
    scope      TEXT NOT NULL,
    idem_key   TEXT NOT NULL,
    hash       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    status     INTEGER NOT NULL,
    headers    TEXT NOT NULL,
    body       {{BYTES}} NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
CREATE INDEX idempotency_keys_by_created ON idempotency_keys (created_at);
