-- The vault: the original behind each masked token, encrypted (AES-GCM, bound to the
-- token) under a data key that KMS, or a local key in development, wraps. Nobody reads it
-- but through the audited functions of sql/003_roles.sql (pii_recovery, one token at a time;
-- pii_retokenizer, in batches). One row per distinct token: an ip seen a million times is
-- stored once.
CREATE TABLE IF NOT EXISTS pii_vault_keys (
    data_key_id  varchar(64) PRIMARY KEY,   -- fingerprint of wrapped_key
    wrapping_key varchar(2048) NOT NULL,    -- the KMS key ARN, or local:<fingerprint>
    wrapped_key  bytea NOT NULL,            -- the data key, encrypted by wrapping_key
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS pii_vault (
    token       varchar(256) PRIMARY KEY,  -- masked_ip or masked_device_id, as stored
    ciphertext  bytea NOT NULL,            -- format byte, nonce, AES-GCM ciphertext and tag
    data_key_id varchar(64) NOT NULL REFERENCES pii_vault_keys (data_key_id),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Every vault read, requested in a transaction of its own that must have committed before
-- the read is allowed (sql/003_roles.sql): a caller who rolls back the read cannot roll
-- back its audit row. `found` and `read_at` are filled in by the read itself.
CREATE TABLE IF NOT EXISTS pii_vault_audit (
    audit_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    db_user    varchar(128) NOT NULL DEFAULT session_user,
    requester  varchar(256) NOT NULL,
    action     varchar(16) NOT NULL CHECK (action IN ('unmask', 'retokenize')),
    token      varchar(256),               -- the token to unmask; NULL for retokenize
    tokens     varchar(256)[],             -- the tokens a retokenize batch reads
    reason     text NOT NULL,
    request_xact xid8 NOT NULL DEFAULT pg_current_xact_id(),
    found      boolean,                    -- NULL until read
    read_at    timestamptz,
    -- Neither may be blank, however spelt (tabs, no-break or zero-width spaces, marks).
    CHECK (requester ~ '[^[:space:][:cntrl:]\u00a0\u1680\u2000-\u206f\u3000\ufeff]'),
    CHECK (reason ~ '[^[:space:][:cntrl:]\u00a0\u1680\u2000-\u206f\u3000\ufeff]'),
    CHECK (coalesce(CASE action WHEN 'unmask' THEN length(token) > 0 AND tokens IS NULL
                                ELSE token IS NULL AND tokens IS NOT NULL END, false))
);
