-- Proxyless gRPC clients register like proxies, with their own mode.
ALTER TABLE workloads DROP CONSTRAINT workloads_mode_check;
ALTER TABLE workloads ADD CONSTRAINT workloads_mode_check CHECK (mode IN ('sidecar', 'gateway', 'proxyless'));
