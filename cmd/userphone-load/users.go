package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/phone"
)

// vuser is one virtual user: a bearer token and what it says about them.
type vuser struct {
	Sub, Email, Token string
	// checkStatus is the answer GET /user/phone must give this user in
	// the check scenario.
	checkStatus int
}

// users hands out virtual users: freshly minted with the server's dev key,
// or taken from a file of tokens.
type users interface {
	// next returns a user no iteration has used yet; false when a token
	// file has run out.
	next() (vuser, bool)
	describe() string
}

// minter mints a dev token per user, with a distinct sub, the e-mail
// address the confirmation e-mail goes to, and every scope.
type minter struct {
	keys  *auth.DevKeys
	run   string
	ttl   time.Duration
	count atomic.Int64
}

func newMinter(dataDir, run string, ttl time.Duration) (*minter, error) {
	// Only an existing key: a new one would sign tokens the server
	// refuses.
	if _, err := os.Stat(filepath.Join(dataDir, "dev-signing-key.json")); err != nil {
		return nil, fmt.Errorf("no dev signing key in %s (%v): point -data-dir at the server's USERPHONE_DATA_DIR, "+
			"or give tokens with -tokens when the server uses an OIDC issuer", dataDir, err)
	}
	keys, err := auth.LoadOrCreateDevKeys(dataDir)
	if err != nil {
		return nil, err
	}
	return &minter{keys: keys, run: run, ttl: ttl}, nil
}

func (m *minter) next() (vuser, bool) {
	sub := "load-" + m.run + "-" + strconv.FormatInt(m.count.Add(1), 10)
	email := sub + "@example.com"
	tok, err := m.keys.Mint(userphone.Identity{Subject: sub, Email: email, Locale: "en", Scopes: auth.AllScopes}, m.ttl, time.Now())
	if err != nil {
		panic(err) // the key loaded, the identity is complete: not reached
	}
	return vuser{Sub: sub, Email: email, Token: tok}, true
}

func (m *minter) describe() string {
	return fmt.Sprintf("dev tokens minted with the server's key (sub load-%s-N, e-mail load-%s-N@example.com)", m.run, m.run)
}

// tokenFile hands out the tokens of a file, one per line, each once.
type tokenFile struct {
	path string
	mu   sync.Mutex
	all  []vuser
	pos  int
}

func readTokenFile(path string) (*tokenFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tf := &tokenFile{path: path}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		tok := strings.TrimSpace(sc.Text())
		if tok == "" || strings.HasPrefix(tok, "#") {
			continue
		}
		u, err := userOfToken(tok)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		tf.all = append(tf.all, u)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(tf.all) == 0 {
		return nil, fmt.Errorf("%s holds no tokens", path)
	}
	return tf, nil
}

// userOfToken reads sub and email from a JWT's payload without checking
// the signature (the server does that): the flow scenario needs to know
// where the confirmation e-mail goes.
func userOfToken(tok string) (vuser, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return vuser{}, errors.New("not a JWT (three dot-separated parts)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return vuser{}, errors.New("the JWT's payload is not base64url")
	}
	var claims struct {
		Sub   string `json:"sub"`
		Email string `json:"email"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Sub == "" {
		return vuser{}, errors.New("the JWT's payload has no sub")
	}
	return vuser{Sub: claims.Sub, Email: claims.Email, Token: tok}, nil
}

func (t *tokenFile) next() (vuser, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pos >= len(t.all) {
		return vuser{}, false
	}
	t.pos++
	return t.all[t.pos-1], true
}

func (t *tokenFile) describe() string {
	return fmt.Sprintf("%d tokens from %s, each used once", len(t.all), t.path)
}

// numbers hands out distinct German mobile numbers, +49 176 and eight
// digits, counting up from a start. The whole range is valid and mobile
// by libphonenumber, and each number is checked with the server's own
// rule (phone.Normalize) anyway. The seed command uses other ranges
// (+49 177, +49 179), so loads never take seeded numbers.
type numbers struct {
	start int64
	n     atomic.Int64
}

const numberRange = 100_000_000 // eight digits

// newNumbers starts at start, or at a random multiple of a million when
// start is negative, so that runs against one database rarely meet (a
// number verified by an earlier run is simply moved to the new user).
func newNumbers(start int64) *numbers {
	if start < 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		start = int64(binary.BigEndian.Uint64(b[:])%(numberRange/1_000_000)) * 1_000_000
	}
	return &numbers{start: start % numberRange}
}

func (n *numbers) next() (string, error) {
	i := (n.start + n.n.Add(1) - 1) % numberRange
	num := fmt.Sprintf("+49176%08d", i)
	norm, err := phone.Normalize(num)
	if err != nil || norm != num {
		return "", fmt.Errorf("generated number %s is not valid by libphonenumber: %v", num, err)
	}
	return num, nil
}
