-- TLS credentials that gateways serve with (Gateway servers[].tls.credentialName), by namespace
-- and name. The private key is sealed with AES-256-GCM under the CA key file's key, as the
-- generated root's key is (ca_root): key_version names the sealing scheme, the nonce is stored
-- beside the ciphertext, and the SHA-256 of the leaf certificate is the additional data, so a
-- sealed key opens only beside its own certificate.
CREATE TABLE secrets (
    namespace      text NOT NULL CHECK (namespace <> '' AND length(namespace) <= 63),
    name           text NOT NULL CHECK (name <> '' AND length(name) <= 253),
    cert_pem       text NOT NULL,                -- the certificate chain, leaf first
    key_version    smallint NOT NULL,
    key_nonce      bytea NOT NULL,
    key_ciphertext bytea NOT NULL,
    ca_cert_pem    text NOT NULL DEFAULT '',     -- roots verifying clients (MUTUAL); '' when none
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, name)
);
