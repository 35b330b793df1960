-- The outcomes service's projection: one compact record per patient
-- (pkg/outcome's text encoding), written by its consumers in their inbox
-- transactions and read in one pass by every evaluation. The episodes,
-- stays and death are in record; the tasks, which only two measures read,
-- apart in tasks. version guards concurrent consumers (optimistic update).
CREATE TABLE outcome_records (
    tenant  TEXT NOT NULL,
    patient TEXT NOT NULL,
    version BIGINT NOT NULL,
    record  TEXT NOT NULL,
    tasks   TEXT NOT NULL,
    PRIMARY KEY (tenant, patient)
);
