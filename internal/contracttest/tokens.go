package contracttest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"time"

	"github.com/pace/userphone/internal/contracttest/check"
)

// TokenSource gives the bearer token of the user the contract test runs
// as. It is asked once per run.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
	// Name says where tokens come from, for the report; never the token.
	Name() string
}

// FixedToken is a token given as it is (-token).
type FixedToken string

func (t FixedToken) Token(context.Context) (string, error) {
	if strings.TrimSpace(string(t)) == "" {
		return "", errors.New("the token is empty; give a bearer token")
	}
	return strings.TrimSpace(string(t)), nil
}

func (FixedToken) Name() string { return "a fixed token" }

// CommandToken is a shell command whose trimmed standard output is a
// token (-token-command), such as one that mints a fresh user.
type CommandToken string

// commandWaitDelay is how long a token command's output is waited for
// after it exited or the run's -timeout killed it: a child it left in the
// background may hold its standard output open for ever.
const commandWaitDelay = 2 * time.Second

// Token runs the command. Its standard error is not shown, not even when
// it fails: a command that mints tokens may print one there.
func (c CommandToken) Token(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "sh", "-c", string(c))
	var stdout bytes.Buffer
	cmd.Stdout = &stdout // and standard error to /dev/null
	cmd.WaitDelay = commandWaitDelay
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return "", fmt.Errorf("the -token-command did not finish within -timeout; run it alone to see why")
	case errors.As(err, &exit):
		return "", fmt.Errorf("the -token-command failed (%s); run it alone to see why", exit.ProcessState)
	case err != nil && !errors.Is(err, exec.ErrWaitDelay):
		// ErrWaitDelay is a command that succeeded but left a child
		// holding its output: what it printed is all there is.
		return "", fmt.Errorf("the -token-command could not run (%v); run it alone to see why", err)
	}
	tok := strings.TrimSpace(stdout.String())
	if tok == "" || strings.ContainsAny(tok, " \n\t") {
		return "", errors.New("the -token-command did not print one token; it must print the bearer token alone on standard output")
	}
	return tok, nil
}

func (CommandToken) Name() string { return "the -token-command" }

// ClientCredentials gets a token by the client_credentials grant (RFC
// 6749 §4.4), authenticating the client with HTTP Basic (§2.3.1).
type ClientCredentials struct {
	TokenURL, ClientID, ClientSecret string
	Scope                            string // space-separated; "" asks for the client's default
	// Audience, when set, is sent as the audience parameter, which issuers
	// such as Ory Hydra and Auth0 need to put an aud into the token.
	Audience string
	Client   *http.Client // nil means a client with a 30 s timeout
}

func (c ClientCredentials) Name() string { return "the client credentials of " + c.ClientID }

// CheckURL checks -token-url: an http(s) URL without a user name or
// password (the client's id and secret have flags of their own), over
// https unless the issuer is on this machine, as it gets the secret.
func (c ClientCredentials) CheckURL() error {
	u, err := parseHTTPURL("-token-url", c.TokenURL)
	if err != nil {
		return fmt.Errorf("%w; give the issuer's token endpoint, e.g. https://id.staging.example.com/oauth2/token", err)
	}
	if u.User != nil {
		return errors.New("-token-url must not hold a user name or password; give them with -client-id and -client-secret")
	}
	return secretsOnlyOverTLS("-token-url", u)
}

func (c ClientCredentials) Token(ctx context.Context) (string, error) {
	if err := c.CheckURL(); err != nil {
		return "", err
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if c.Scope != "" {
		form.Set("scope", c.Scope)
	}
	if c.Audience != "" {
		form.Set("audience", c.Audience)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("the -token-url %s is not a URL: %w", redacted(c.TokenURL), unwrapURLError(err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// §2.3.1: the id and secret are form-encoded before they are joined.
	req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret))
	resp, err := c.client().Do(req)
	if err != nil {
		return "", fmt.Errorf("the token endpoint cannot be reached: %w; check -token-url", unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := readAnswer(resp.Body, maxAnswer)
	if err != nil {
		return "", fmt.Errorf("the token endpoint's answer: %w", err)
	}
	return readTokenAnswer(resp, body)
}

// client is c.Client, or one with a 30 s timeout, that follows no
// redirect: the client's secret goes to -token-url and nowhere else.
func (c ClientCredentials) client() *http.Client {
	client := &http.Client{Timeout: requestTimeout}
	if c.Client != nil {
		copied := *c.Client
		client = &copied
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return client
}

// readTokenAnswer reads the token endpoint's answer (RFC 6749 §5.1,
// §5.2): the bearer token, or why there is none.
func readTokenAnswer(resp *http.Response, body []byte) (string, error) {
	var answer struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &answer)
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return "", fmt.Errorf("the token endpoint answered %d, a redirect, which is not followed with the client's secret; give -token-url as the issuer's token endpoint itself", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("the token endpoint answered %d %s%s; check -client-id, -client-secret and -scope", resp.StatusCode, answer.Error, firstLine(": ", answer.Description))
	case answer.AccessToken == "":
		return "", errors.New("the token endpoint's answer has no access_token; is -token-url the issuer's token endpoint?")
	case answer.TokenType != "" && !strings.EqualFold(answer.TokenType, "bearer"):
		return "", fmt.Errorf("the token endpoint gave a %q token, not a bearer token", answer.TokenType)
	}
	return answer.AccessToken, nil
}

// claims are what the contract test reads of a JWT bearer token: the
// user, and the address the confirmation e-mail goes to. An opaque token
// has none.
type claims struct {
	Subject string
	Email   string
}

// readClaims reads a JWT's sub and email (at the top level, or under
// "ext", where Ory Hydra puts a login's claims) without checking its
// signature: the instance checks it; this only learns where mail goes.
func readClaims(token string) claims {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return claims{}
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return claims{}
	}
	var c struct {
		Sub   string `json:"sub"`
		Email string `json:"email"`
		Ext   struct {
			Email string `json:"email"`
		} `json:"ext"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return claims{}
	}
	if c.Email == "" {
		c.Email = c.Ext.Email
	}
	return claims{Subject: c.Sub, Email: c.Email}
}

// firstLine is sep and the first line of s, shortened, or "" when s is
// blank.
func firstLine(sep, s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if s == "" {
		return ""
	}
	return sep + check.Shorten(s, 200)
}
