-- The mesh-wide config version. Every change that alters any proxy's configuration (a
-- registry change now, a committed revision later) takes the next value, and snapshots are
-- versioned with it, so a restarted server never reuses a version for other content.
CREATE SEQUENCE mesh_version_seq AS bigint;

-- Workloads registered by their proxies (universal mode). One row per proxy instance.
CREATE TABLE workloads (
    node_id         text PRIMARY KEY,
    namespace       text NOT NULL,
    service         text NOT NULL,
    name            text NOT NULL,
    mode            text NOT NULL DEFAULT 'sidecar' CHECK (mode IN ('sidecar', 'gateway')),
    labels          jsonb NOT NULL DEFAULT '{}'::jsonb,
    address         inet NOT NULL,
    ports           jsonb NOT NULL DEFAULT '[]'::jsonb,
    service_account text NOT NULL DEFAULT '',
    registered_at   timestamptz NOT NULL DEFAULT now(),
    -- connected_at is when the current stream opened; disconnected_at is set when the stream
    -- closes and cleared when it comes back. A row whose disconnected_at is older than the
    -- grace period is removed.
    connected_at    timestamptz NOT NULL DEFAULT now(),
    disconnected_at timestamptz
);

CREATE INDEX workloads_service_idx ON workloads (namespace, service);
