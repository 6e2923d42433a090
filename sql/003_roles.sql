-- Group roles (NOLOGIN) and what each may do; grant them to real logins (README,
-- "Roles"). Nobody reads the vault directly: pii_vault_read returns its rows, and only under
-- an audit row committed beforehand, so no read goes unrecorded.
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

-- Reading the vault takes two transactions. The first records the request (who, why,
-- which tokens) and must commit; the second reads, and only under a committed request of
-- the same login, at most 15 minutes old, and only once. A read in the request's own
-- transaction (or a savepoint of it) is refused, so rolling back cannot erase the trail of
-- a read. Times are clock_timestamp(), not now(): a transaction held open cannot date a
-- request earlier than it was made, nor stretch its 15 minutes. Each search_path names
-- pg_temp last: otherwise a caller's temporary table named like ours would be found first
-- (Postgres searches pg_temp first unless told where), and could stand in for the trail.
CREATE OR REPLACE FUNCTION pii_request_unmask(p_token varchar, p_requester varchar,
                                              p_reason text)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    INSERT INTO pii_vault_audit (requester, action, token, reason)
        VALUES (p_requester, 'unmask', p_token, p_reason)
        RETURNING audit_id;
$$;

CREATE OR REPLACE FUNCTION pii_request_retokenize(p_tokens varchar[], p_requester varchar,
                                                  p_reason text)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    INSERT INTO pii_vault_audit (requester, action, tokens, reason)
        VALUES (p_requester, 'retokenize', p_tokens, p_reason)
        RETURNING audit_id;
$$;

-- The vault rows a committed request names: its one token (unmask) or its tokens
-- (retokenize).
CREATE OR REPLACE FUNCTION pii_vault_read(p_audit_id bigint)
RETURNS TABLE (token varchar, ciphertext bytea, data_key_id varchar, wrapping_key varchar,
               wrapped_key bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    request pii_vault_audit%ROWTYPE;
    read_count integer;
BEGIN
    -- FOR UPDATE: a second read of the same request, at the same time, waits for this one
    -- and then finds it read.
    SELECT * INTO request FROM pii_vault_audit a WHERE a.audit_id = p_audit_id FOR UPDATE;
    IF NOT FOUND OR request.db_user <> session_user THEN
        RAISE EXCEPTION 'no vault request % of this login', p_audit_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF pg_xact_status(request.request_xact) IS DISTINCT FROM 'committed' THEN
        RAISE EXCEPTION 'vault request % is not committed: commit it, then read'
            , p_audit_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF request.at < clock_timestamp() - interval '15 minutes' THEN
        RAISE EXCEPTION 'vault request % has expired: make a new one', p_audit_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF request.read_at IS NOT NULL THEN
        RAISE EXCEPTION 'vault request % was read already: make a new one', p_audit_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY
        SELECT v.token, v.ciphertext, v.data_key_id, k.wrapping_key, k.wrapped_key
        FROM pii_vault v JOIN pii_vault_keys k USING (data_key_id)
        WHERE v.token = ANY (coalesce(request.tokens, ARRAY[request.token]));
    GET DIAGNOSTICS read_count = ROW_COUNT;
    UPDATE pii_vault_audit a SET found = read_count > 0, read_at = clock_timestamp()
        WHERE a.audit_id = p_audit_id;
END
$$;

REVOKE ALL ON pii_vault, pii_vault_keys, pii_vault_audit FROM PUBLIC;
REVOKE ALL ON FUNCTION pii_request_unmask(varchar, varchar, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pii_request_retokenize(varchar[], varchar, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pii_vault_read(bigint) FROM PUBLIC;

-- The function: SELECT because its insert returns the stored message ids. It may add to
-- the vault but never read it.
GRANT SELECT, INSERT ON user_logins TO login_ingest_writer;
GRANT INSERT ON pii_vault, pii_vault_keys TO login_ingest_writer;

-- Analysts: the masked table, nothing of the vault.
GRANT SELECT ON user_logins TO analyst;

-- Recovery: one original at a time, each read audited; and the audit trail itself.
GRANT EXECUTE ON FUNCTION pii_request_unmask(varchar, varchar, text) TO pii_recovery;
GRANT EXECUTE ON FUNCTION pii_vault_read(bigint) TO pii_recovery;
GRANT SELECT ON pii_vault_audit TO pii_recovery;

-- Re-tokenising after a masking-key rotation: read originals in batches (audited), add
-- their new tokens to the vault, and rewrite the two masked columns.
GRANT EXECUTE ON FUNCTION pii_request_retokenize(varchar[], varchar, text) TO pii_retokenizer;
GRANT EXECUTE ON FUNCTION pii_vault_read(bigint) TO pii_retokenizer;
GRANT SELECT, UPDATE (masked_ip, masked_device_id) ON user_logins TO pii_retokenizer;
GRANT INSERT ON pii_vault, pii_vault_keys TO pii_retokenizer;
