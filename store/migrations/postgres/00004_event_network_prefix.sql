-- +goose Up
-- The per-network and per-prefix SMS limits count events by the client's
-- network (a keyed hash) and the number's range. Older events have
-- neither and count for no network or prefix.
ALTER TABLE phone_events ADD COLUMN client_net_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE phone_events ADD COLUMN dest_prefix TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE phone_events DROP COLUMN dest_prefix;
ALTER TABLE phone_events DROP COLUMN client_net_hash;
