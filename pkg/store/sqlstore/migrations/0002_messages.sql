-- Archive of inbound hospital messages (FHIR messages and HL7 v2), kept
-- with the answer given so that a re-send gets the same answer.
CREATE TABLE messages (
    seq           {{SERIAL}},
    id            TEXT NOT NULL UNIQUE,
    tenant        TEXT NOT NULL,
    channel       TEXT NOT NULL,
    sender        TEXT NOT NULL,
    msg_key       TEXT NOT NULL,
    hash          TEXT NOT NULL,
    control_id    TEXT NOT NULL,
    event         TEXT NOT NULL,
    patient       TEXT NOT NULL,
    received_at   BIGINT NOT NULL,
    status        TEXT NOT NULL,
    response      {{BYTES}} NOT NULL,
    response_code INTEGER NOT NULL,
    raw           {{BYTES}} NOT NULL,
    UNIQUE (tenant, channel, msg_key)
);
CREATE INDEX messages_by_control_id ON messages (tenant, control_id);
CREATE INDEX messages_by_patient ON messages (tenant, patient);
