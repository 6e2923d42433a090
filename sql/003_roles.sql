-- Group roles (NOLOGIN) and what each may do; grant them to real logins (README,
-- "Roles"). Nobody reads the vault directly: pii_unmask and pii_vault_rows return its rows
-- and write the audit row in the same transaction, so no read goes unrecorded.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'login_ingest_writer') THEN
        CREATE ROLE login_ingest_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'analyst') THEN
        CREATE ROLE analyst NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pii_recovery') THEN
        CREATE ROLE pii_recovery NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pii_retokenizer') THEN
        CREATE ROLE pii_retokenizer NOLOGIN;
    END IF;
END
$$;

-- One original, for `unmask`: the audit row is written whether or not the token is found.
CREATE OR REPLACE FUNCTION pii_unmask(p_token varchar, p_requester varchar, p_reason text)
RETURNS TABLE (ciphertext bytea, data_key_id varchar, wrapping_key varchar, wrapped_key bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    RETURN QUERY
        SELECT v.ciphertext, v.data_key_id, k.wrapping_key, k.wrapped_key
        FROM pii_vault v JOIN pii_vault_keys k USING (data_key_id)
        WHERE v.token = p_token;
    INSERT INTO pii_vault_audit (requester, action, token, found, reason)
        VALUES (p_requester, 'unmask', p_token, FOUND, p_reason);
END
$$;

-- Many originals, for `retokenize`: one audit row per call, naming how many were read.
CREATE OR REPLACE FUNCTION pii_vault_rows(p_tokens varchar[], p_requester varchar,
                                          p_reason text)
RETURNS TABLE (token varchar, ciphertext bytea, data_key_id varchar, wrapping_key varchar,
               wrapped_key bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    read_count integer;
BEGIN
    RETURN QUERY
        SELECT v.token, v.ciphertext, v.data_key_id, k.wrapping_key, k.wrapped_key
        FROM pii_vault v JOIN pii_vault_keys k USING (data_key_id)
        WHERE v.token = ANY (p_tokens);
    GET DIAGNOSTICS read_count = ROW_COUNT;
    INSERT INTO pii_vault_audit (requester, action, token, found, reason)
        VALUES (p_requester, 'retokenize', NULL, read_count > 0,
                p_reason || ' (' || read_count || ' of ' || cardinality(p_tokens)
                || ' tokens read)');
END
$$;

REVOKE ALL ON pii_vault, pii_vault_keys, pii_vault_audit FROM PUBLIC;
REVOKE ALL ON FUNCTION pii_unmask(varchar, varchar, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pii_vault_rows(varchar[], varchar, text) FROM PUBLIC;

-- The function: SELECT because its insert returns the stored message ids. It may add to
-- the vault but never read it.
GRANT SELECT, INSERT ON user_logins TO login_ingest_writer;
GRANT INSERT ON pii_vault, pii_vault_keys TO login_ingest_writer;

-- Analysts: the masked table, nothing of the vault.
GRANT SELECT ON user_logins TO analyst;

-- Recovery: one original at a time, each read audited; and the audit trail itself.
GRANT EXECUTE ON FUNCTION pii_unmask(varchar, varchar, text) TO pii_recovery;
GRANT SELECT ON pii_vault_audit TO pii_recovery;

-- Re-tokenising after a masking-key rotation: read originals in batches (audited), add
-- their new tokens to the vault, and rewrite the two masked columns.
GRANT EXECUTE ON FUNCTION pii_vault_rows(varchar[], varchar, text) TO pii_retokenizer;
GRANT SELECT, UPDATE (masked_ip, masked_device_id) ON user_logins TO pii_retokenizer;
GRANT INSERT ON pii_vault, pii_vault_keys TO pii_retokenizer;
