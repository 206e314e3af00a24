-- Users, their browser sessions and API tokens, and the audit log.
-- Secrets are never stored: passwords as argon2id PHC strings, session cookies and API tokens
-- as the SHA-256 of their value.

CREATE TABLE users (
    username      text PRIMARY KEY CHECK (username <> '' AND length(username) <= 64),
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A session lasts until expires_at however much it is used (absolute lifetime). Deleting a
-- user ends their sessions and tokens with it.
CREATE TABLE sessions (
    id          text PRIMARY KEY,               -- public name, for logs and the audit log
    secret_hash bytea NOT NULL UNIQUE,          -- sha256 of the cookie value
    username    text NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

CREATE INDEX sessions_username_idx ON sessions (username);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- Revoked tokens are kept, so that lists and the audit log can still name them.
CREATE TABLE api_tokens (
    id           text PRIMARY KEY,
    secret_hash  bytea NOT NULL UNIQUE,         -- sha256 of the token
    name         text NOT NULL,
    username     text NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    last_used_at timestamptz,                   -- written at most once a minute
    revoked_at   timestamptz
);

CREATE INDEX api_tokens_username_idx ON api_tokens (username, created_at);

-- Who did what, when, from where, and how it went. Rows are only ever appended. actor is a
-- name, not a reference: entries outlive the users they name, and a failed sign-in records the
-- name that was tried.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    target      text NOT NULL DEFAULT '',
    outcome     text NOT NULL,
    detail      text NOT NULL DEFAULT '',
    before      jsonb,
    after       jsonb,
    client_addr text NOT NULL DEFAULT ''
);

-- Listing is newest first by id, optionally filtered by one of these.
CREATE INDEX audit_log_actor_idx ON audit_log (actor, id);
CREATE INDEX audit_log_action_idx ON audit_log (action, id);
CREATE INDEX audit_log_target_idx ON audit_log (target, id);
CREATE INDEX audit_log_at_idx ON audit_log (at);
