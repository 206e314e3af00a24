-- Requests that came over mutual TLS, as the destination's proxy reported them
-- (connection_security_policy "mutual_tls"). A counter rather than a label column: it adds
-- no series, so the rollups keep their size. Rows written before it count none.
ALTER TABLE telemetry_10s ADD COLUMN mtls_requests bigint NOT NULL DEFAULT 0;
ALTER TABLE telemetry_1m ADD COLUMN mtls_requests bigint NOT NULL DEFAULT 0;
