package store

import "context"

// ClaimSecretFingerprint records fp as the fingerprint of the service's
// secret unless one is recorded already, and returns the recorded one: the
// first replica's, when two start at once.
func (s *Store) ClaimSecretFingerprint(ctx context.Context, fp string) (string, error) {
	db := s.db.WithContext(ctx)
	if err := db.Exec("INSERT INTO secret_fingerprint (id, fingerprint) VALUES (1, ?) ON CONFLICT (id) DO NOTHING", fp).Error; err != nil {
		return "", err
	}
	var recorded string
	err := db.Raw("SELECT fingerprint FROM secret_fingerprint WHERE id = 1").Scan(&recorded).Error
	return recorded, err
}

// ReplaceSecretFingerprint records fp in place of whatever was recorded.
func (s *Store) ReplaceSecretFingerprint(ctx context.Context, fp string) error {
	return s.db.WithContext(ctx).Exec(
		"INSERT INTO secret_fingerprint (id, fingerprint) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint", fp).Error
}
