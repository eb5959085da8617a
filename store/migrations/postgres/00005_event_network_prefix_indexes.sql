-- +goose NO TRANSACTION
-- +goose Up
-- The limits count one kind of event per network or prefix within a
-- window. CONCURRENTLY keeps the table writable while a large
-- installation builds them on upgrade.
CREATE INDEX CONCURRENTLY IF NOT EXISTS phone_events_net ON phone_events (client_net_hash, kind, at) WHERE client_net_hash <> '';
CREATE INDEX CONCURRENTLY IF NOT EXISTS phone_events_prefix ON phone_events (dest_prefix, kind, at) WHERE dest_prefix <> '';

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS phone_events_prefix;
DROP INDEX CONCURRENTLY IF EXISTS phone_events_net;
