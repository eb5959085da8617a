-- +goose Up
-- The audit trail, and the ledger the rate limits count: every step of
-- every change, with the request id and a keyed hash of the client's IP.
-- It never holds a code or a token.
CREATE TABLE phone_events (
    id             BIGSERIAL PRIMARY KEY,
    at             TIMESTAMPTZ NOT NULL,
    kind           TEXT NOT NULL,
    user_id        TEXT NOT NULL DEFAULT '',
    change_id      TEXT NOT NULL DEFAULT '',
    phone_number   TEXT NOT NULL DEFAULT '',
    request_id     TEXT NOT NULL DEFAULT '',
    client_ip_hash TEXT NOT NULL DEFAULT '',
    detail         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX phone_events_user ON phone_events (user_id, kind, at);
CREATE INDEX phone_events_number ON phone_events (phone_number, kind, at);
CREATE INDEX phone_events_kind ON phone_events (kind, at);

-- +goose Down
DROP TABLE phone_events;
