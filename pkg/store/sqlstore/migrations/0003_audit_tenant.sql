-- The audit hash chain is per tenant: each record follows the previous
-- record of its own tenant, so one CPTS's trail is verified (and handed
-- over) on its own.
CREATE INDEX audit_by_tenant ON audit (tenant, seq);
