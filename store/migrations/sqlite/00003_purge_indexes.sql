-- +goose Up
-- The hourly retention purge deletes closed changes and old events by
-- time; without these it would scan both tables whole.
CREATE INDEX phone_changes_closed ON phone_changes (closed_at) WHERE closed_at IS NOT NULL;
CREATE INDEX phone_events_at ON phone_events (at);

-- +goose Down
DROP INDEX phone_events_at;
DROP INDEX phone_changes_closed;
