-- Mesh configuration: the current resources, and the append-only history of every change.

-- The mesh-wide revision counter. Writers take the next number by updating this one row, which
-- holds a row lock until their transaction ends: revisions therefore commit in the order of
-- their numbers, and a reader that has seen revision N never later finds a smaller one.
CREATE TABLE mesh_revision (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    value     bigint NOT NULL
);
INSERT INTO mesh_revision (value) VALUES (0);

CREATE TABLE revisions (
    revision    bigint PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    message     text NOT NULL DEFAULT '',
    -- rolled_back_to is set when the revision is a rollback.
    rolled_back_to bigint
);

-- One row per resource a revision changed. before/after are the whole stored objects
-- (apiVersion, metadata, spec); NULL when the resource did not exist on that side.
CREATE TABLE revision_changes (
    revision  bigint NOT NULL REFERENCES revisions (revision),
    kind      text NOT NULL,
    namespace text NOT NULL,
    name      text NOT NULL,
    action    text NOT NULL CHECK (action IN ('create', 'update', 'delete')),
    before    jsonb,
    after     jsonb,
    PRIMARY KEY (revision, kind, namespace, name)
);
CREATE INDEX revision_changes_resource_idx ON revision_changes (kind, namespace, name, revision);

CREATE TABLE resources (
    kind             text NOT NULL,
    namespace        text NOT NULL,
    name             text NOT NULL,
    api_version      text NOT NULL,
    labels           jsonb NOT NULL DEFAULT '{}'::jsonb,
    annotations      jsonb NOT NULL DEFAULT '{}'::jsonb,
    spec             jsonb NOT NULL,
    -- resource_version is the revision that last changed the resource.
    resource_version bigint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       text NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE INDEX resources_namespace_idx ON resources (namespace, kind);
