package flow

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
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

// The code and the e-mail token of a message are derived from the secret
// and the message's identity (change, message number) rather than drawn at
// random and stored: the queue then holds no secret, a retry of a message
// carries the same code, and the next message of the change a new one. The
// change id is random, so neither can be guessed without the secret.

// smsCode is the 6-digit code of the change's n-th message.
func (s *Service) smsCode(changeID string, n int) string {
	sum := s.mac("sms-code-value", changeID, strconv.Itoa(n))
	// 64 bits mod 10^6: the bias is below 10^-13, nothing to exploit.
	return fmt.Sprintf("%06d", binary.BigEndian.Uint64(sum)%1_000_000)
}

// emailToken is the 256-bit link token of the change's n-th message.
func (s *Service) emailToken(changeID string, n int) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("email-token-value", changeID, strconv.Itoa(n)))
}

// SecretFingerprint names a secret without revealing it: an HMAC of a
// fixed label under the secret. Replicas compare fingerprints to agree on
// one secret.
func SecretFingerprint(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("userphone secret fingerprint"))
	return hex.EncodeToString(m.Sum(nil)[:16])
}
