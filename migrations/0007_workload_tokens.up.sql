-- Workload tokens: the bootstrap credential a proxy presents on the authenticated xDS port,
-- bound to one workload identity (namespace and service account). Like API tokens, only the
-- SHA-256 of the token is stored, and revoked tokens are kept so lists can still name them.
CREATE TABLE workload_tokens (
    id              text PRIMARY KEY,
    secret_hash     bytea NOT NULL UNIQUE,      -- sha256 of the token
    name            text NOT NULL,
    namespace       text NOT NULL CHECK (namespace <> '' AND length(namespace) <= 63),
    service_account text NOT NULL CHECK (service_account <> '' AND length(service_account) <= 253),
    created_by      text NOT NULL,              -- a name, not a reference: tokens outlive users
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    last_used_at    timestamptz,                -- written at most once a minute
    revoked_at      timestamptz
);

CREATE INDEX workload_tokens_created_idx ON workload_tokens (created_at);

-- The mesh certificate authority's own root, generated at the first start when no signing
-- certificate is supplied. There is at most one row (id = 1). The private key is sealed with
-- AES-256-GCM under the key in the CA key file: key_version says which sealing scheme, and the
-- nonce is stored beside the ciphertext.
CREATE TABLE ca_root (
    id             smallint PRIMARY KEY CHECK (id = 1),
    cert_der       bytea NOT NULL,
    key_version    smallint NOT NULL,
    key_nonce      bytea NOT NULL,
    key_ciphertext bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
