package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pace/userphone/flow"
)

// loadSecret returns USERPHONE_SECRET, or the secret kept in the data
// directory, made on first start. Replicas must share one secret, so
// production sets the variable.
func loadSecret(cfg config) ([]byte, error) {
	if cfg.App.Flow.Secret != nil {
		return cfg.App.Flow.Secret, nil
	}
	dir := cfg.App.Store.DataDir
	path := filepath.Join(dir, "secret")
	if b, err := os.ReadFile(path); err == nil {
		secret, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err == nil {
			err = flow.CheckSecret(secret)
		}
		if err != nil {
			return nil, fmt.Errorf("the secret file %s is damaged; delete it to make a new one (pending codes and links stop working)", path)
		}
		return secret, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	secret := make([]byte, flow.MinSecretBytes)
	_, _ = rand.Read(secret)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return loadSecret(cfg) // another process made it first
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.WriteString(hex.EncodeToString(secret) + "\n"); err != nil {
		return nil, err
	}
	return secret, f.Sync()
}
