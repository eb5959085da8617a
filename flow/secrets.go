package flow

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
)

// Codes and tokens are stored only as HMACs keyed with the server secret:
// a leaked database alone cannot be used to verify a number or confirm a
// link, and the hash of a 6-digit code cannot be brute-forced offline.
// Each hash is bound to its purpose, and a code to its change, so a value
// for one cannot stand in for another.

func (s *Service) codeHash(changeID, code string) []byte {
	return s.mac("sms-code", changeID, code)
}

func (s *Service) tokenHash(token string) []byte {
	return s.mac("email-token", token)
}

func (s *Service) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, s.cfg.Secret)
	for _, p := range parts {
		// Length-prefixing keeps ("ab","c") and ("a","bc") apart.
		fmt.Fprintf(m, "%d:%s;", len(p), p)
	}
	return m.Sum(nil)
}

// newCode returns 6 uniformly random digits.
func newCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// newToken returns 256 random bits, URL-safe.
func newToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
