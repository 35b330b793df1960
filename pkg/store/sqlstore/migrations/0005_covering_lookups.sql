-- The search indexes' lookup indexes carry the resource id, so that the
-- ids matching a criterion are read from the index alone: the search
-- starts from them (a patient's observations, an owner's tasks) instead
-- of from every resource of the type.
DROP INDEX idx_token_lookup;
CREATE INDEX idx_token_lookup ON idx_token (res_type, param, code, res_id, sys);
DROP INDEX idx_ref_lookup;
CREATE INDEX idx_ref_lookup ON idx_ref (res_type, param, ref, res_id);
DROP INDEX idx_string_lookup;
CREATE INDEX idx_string_lookup ON idx_string (res_type, param, norm{{PATTERN_OPS}}, res_id);
DROP INDEX idx_date_lookup;
CREATE INDEX idx_date_lookup ON idx_date (res_type, param, lo, hi, res_id);
