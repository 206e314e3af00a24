DELETE FROM workloads WHERE mode = 'proxyless';
ALTER TABLE workloads DROP CONSTRAINT workloads_mode_check;
ALTER TABLE workloads ADD CONSTRAINT workloads_mode_check CHECK (mode IN ('sidecar', 'gateway'));
