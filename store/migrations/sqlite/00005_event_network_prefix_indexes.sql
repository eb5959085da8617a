-- +goose Up
-- The limits count one kind of event per network or prefix within a
-- window.
CREATE INDEX phone_events_net ON phone_events (client_net_hash, kind, at) WHERE client_net_hash <> '';
CREATE INDEX phone_events_prefix ON phone_events (dest_prefix, kind, at) WHERE dest_prefix <> '';

-- +goose Down
DROP INDEX phone_events_prefix;
DROP INDEX phone_events_net;
