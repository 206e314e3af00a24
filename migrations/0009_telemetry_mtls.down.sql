ALTER TABLE telemetry_1m DROP COLUMN mtls_requests;
ALTER TABLE telemetry_10s DROP COLUMN mtls_requests;
