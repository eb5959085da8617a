-- +goose NO TRANSACTION
-- +goose Up
-- The hourly retention purge deletes closed changes and old events by
-- time; without these it would scan both tables whole. CONCURRENTLY keeps
-- the tables writable while a large installation builds them on upgrade.
CREATE INDEX CONCURRENTLY IF NOT EXISTS phone_changes_closed ON phone_changes (closed_at) WHERE closed_at IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS phone_events_at ON phone_events (at);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS phone_events_at;
DROP INDEX CONCURRENTLY IF EXISTS phone_changes_closed;
