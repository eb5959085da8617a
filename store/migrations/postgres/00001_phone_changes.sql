-- +goose Up
CREATE TABLE users (
    id                TEXT PRIMARY KEY,
    email             TEXT NOT NULL DEFAULT '',
    locale            TEXT NOT NULL DEFAULT '',
    phone_number      TEXT,
    phone_verified_at TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

-- One verified owner per number: carriers recycle numbers, so the flow moves
-- a number to whoever proves possession last, and this index guarantees the
-- move never leaves two owners behind, even under concurrent verifies.
CREATE UNIQUE INDEX users_verified_phone_number_key
    ON users (phone_number) WHERE phone_number IS NOT NULL;

CREATE TABLE phone_changes (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    phone_number     TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN
                         ('awaiting-email-confirmation', 'awaiting-code', 'verified', 'expired', 'cancelled')),
    email_token_hash BYTEA,
    code_hash        BYTEA,
    attempts         INTEGER NOT NULL DEFAULT 0,
    sends            INTEGER NOT NULL DEFAULT 0,
    last_sent_at     TIMESTAMPTZ,
    cancel_reason    TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    closed_at        TIMESTAMPTZ,
    -- version guards every update: a write based on a stale read fails
    -- instead of undoing a concurrent change (e.g. the expiry sweep).
    version          INTEGER NOT NULL DEFAULT 0
);

-- At most one open change per user: two concurrent first requests cannot
-- both start one.
CREATE UNIQUE INDEX phone_changes_one_open_per_user
    ON phone_changes (user_id) WHERE status IN ('awaiting-email-confirmation', 'awaiting-code');
CREATE UNIQUE INDEX phone_changes_email_token_hash_key
    ON phone_changes (email_token_hash) WHERE email_token_hash IS NOT NULL;
CREATE INDEX phone_changes_user_created ON phone_changes (user_id, created_at DESC);
CREATE INDEX phone_changes_open_expiry
    ON phone_changes (expires_at) WHERE status IN ('awaiting-email-confirmation', 'awaiting-code');

-- +goose Down
DROP TABLE phone_changes;
DROP TABLE users;
