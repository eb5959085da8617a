package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/pace/userphone"
	"github.com/pace/userphone/internal/logs"
)

const devKeyFile = "dev-signing-key.json"

// DevKeys signs and verifies tokens in dev mode, where no OIDC issuer is
// configured.
type DevKeys struct {
	private jwk.Key // Ed25519, with kid
	public  jwk.Set // the public half, same kid
}

// LoadOrCreateDevKeys reads dataDir/dev-signing-key.json (a private Ed25519
// JWK with "kid"), or creates it when absent.
func LoadOrCreateDevKeys(dataDir string) (*DevKeys, error) {
	path := filepath.Join(dataDir, devKeyFile)
	data, err := os.ReadFile(path)
	if err == nil {
		return parseDevKey(path, data)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read dev signing key: %w", err)
	}

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	data, err = newDevKey()
	if err != nil {
		return nil, err
	}
	if err := writeNew(path, data); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("write dev signing key: %w", err)
		}
		// Another process created the key first; use theirs so tokens
		// minted by either verify with both.
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("read dev signing key: %w", err)
		}
	}
	return parseDevKey(path, data)
}

func newDevKey() ([]byte, error) {
	_, raw, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate dev signing key: %w", err)
	}
	key, err := jwk.Import(raw)
	if err != nil {
		return nil, fmt.Errorf("import dev signing key: %w", err)
	}
	if err := jwk.AssignKeyID(key); err != nil {
		return nil, fmt.Errorf("assign dev signing key id: %w", err)
	}
	if err := key.Set(jwk.AlgorithmKey, jwa.EdDSA()); err != nil {
		return nil, fmt.Errorf("set dev signing key alg: %w", err)
	}
	return json.Marshal(key)
}

// writeNew atomically creates path with data, failing with fs.ErrExist if
// path exists. The key is complete in a temp file before it is linked into
// place, so a concurrent reader never sees half a key; a link, unlike a
// rename, never replaces a key another process already uses.
func writeNew(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".dev-signing-key-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	// CreateTemp already uses 0600; be explicit, as the file holds a secret.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}

func parseDevKey(path string, data []byte) (*DevKeys, error) {
	bad := func(why string) error {
		return fmt.Errorf("dev signing key %s %s; delete the file to get a new key (tokens signed with the old key stop working)", path, why)
	}
	key, err := jwk.ParseKey(data)
	if err != nil {
		return nil, bad("is not a valid JWK")
	}
	var raw ed25519.PrivateKey
	if err := jwk.Export(key, &raw); err != nil {
		return nil, bad("is not an Ed25519 private key")
	}
	kid, ok := key.KeyID()
	if !ok || kid == "" {
		return nil, bad("has no kid")
	}
	// Re-import the raw key so the private key and the public set are
	// consistent with each other whatever else the file held.
	private, err := jwk.Import(raw)
	if err != nil {
		return nil, bad("is not an Ed25519 private key")
	}
	public, err := jwk.Import(raw.Public())
	if err != nil {
		return nil, bad("is not an Ed25519 private key")
	}
	for _, k := range []jwk.Key{private, public} {
		if err := k.Set(jwk.KeyIDKey, kid); err != nil {
			return nil, bad("has an invalid kid")
		}
		if err := k.Set(jwk.AlgorithmKey, jwa.EdDSA()); err != nil {
			return nil, err
		}
	}
	set := jwk.NewSet()
	if err := set.AddKey(public); err != nil {
		return nil, err
	}
	return &DevKeys{private: private, public: set}, nil
}

// PublicSet returns the public half of the dev key as a JWK set, e.g. for
// a JWKS endpoint. The caller must not modify it.
func (k *DevKeys) PublicSet() jwk.Set {
	return k.public
}

// Mint signs a token naming id, valid from now for ttl. Scopes become the
// "scope" claim; LinkedIdentities, when any, the "linked_identities" array.
func (k *DevKeys) Mint(id userphone.Identity, ttl time.Duration, now time.Time) (string, error) {
	if id.Subject == "" {
		return "", errors.New("mint dev token: identity has no subject")
	}
	if ttl <= 0 {
		return "", errors.New("mint dev token: ttl must be positive")
	}
	b := jwt.NewBuilder().
		Issuer(DevIssuer).
		Audience([]string{DevAudience}).
		Subject(id.Subject).
		IssuedAt(now).
		NotBefore(now).
		Expiration(now.Add(ttl)).
		JwtID(rand.Text())
	if id.Email != "" {
		b = b.Claim("email", id.Email)
	}
	if id.EmailUnverified {
		b = b.Claim("email_verified", false)
	}
	if id.Locale != "" {
		b = b.Claim("locale", id.Locale)
	}
	if len(id.Scopes) > 0 {
		b = b.Claim("scope", strings.Join(id.Scopes, " "))
	}
	if len(id.LinkedIdentities) > 0 {
		b = b.Claim(DefaultLinkedIdentityClaim, id.LinkedIdentities)
	}
	tok, err := b.Build()
	if err != nil {
		return "", fmt.Errorf("mint dev token: %w", err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.EdDSA(), k.private))
	if err != nil {
		return "", fmt.Errorf("mint dev token: %w", err)
	}
	return string(signed), nil
}

// Verifier returns a Verifier that accepts only tokens signed by this key
// for DevIssuer and DevAudience; policy.Issuer and policy.Audience are
// ignored, its linked-identity part applies. log receives the reasons for
// rejections at debug level and may be nil; clock may be nil (time.Now).
func (k *DevKeys) Verifier(policy Policy, log *slog.Logger, clock func() time.Time) Verifier {
	policy.Issuer, policy.Audience = DevIssuer, DevAudience
	v := &tokenVerifier{policy: policy, log: logs.OrDiscard(log), clock: clock}
	jk, _ := k.public.Key(0)
	public, err := newPublicKey(jk)
	if err != nil { // not reached: parseDevKey made an Ed25519 key for EdDSA
		v.key = func(context.Context, string, jwa.SignatureAlgorithm) (*publicKey, error) {
			return nil, reject(errInvalid, "dev key unusable: "+err.Error())
		}
		return v
	}
	v.key = func(_ context.Context, kid string, _ jwa.SignatureAlgorithm) (*publicKey, error) {
		if kid != "" && kid != public.kid {
			return nil, reject(errInvalid, "unknown kid", kidAttr(kid))
		}
		return public, nil
	}
	return v
}
