-- +goose Up
-- One row: the fingerprint (an HMAC of a fixed label, never the secret) of
-- the secret that derives the codes and links, so that a replica started
-- with another secret refuses to start instead of sending codes that the
-- others refuse.
CREATE TABLE secret_fingerprint (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL
);

-- +goose Down
DROP TABLE secret_fingerprint;
