//go:build unix

package faults

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for the test database

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/internal/contract"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/internal/testservers"
	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/store/storetest"
)

const (
	replicas = 3
	workers  = 8
	// The phases of the timeline, from the start of the load.
	warmUp       = 10 * time.Second // load on all replicas
	afterKill    = 10 * time.Second // load on the survivors before PostgreSQL restarts
	smtpDown     = 30 * time.Second
	receiverDown = 30 * time.Second
	// drainWithin bounds the wait for the messages still owed after the
	// load stops: a delivery that failed just before the receiver came back
	// waits for its next retry (1 s doubling, ±20 %: at most ~40 s).
	drainWithin = 75 * time.Second
)

var (
	apiPath     = openapi.BasePath + "/user/phone"
	verifyPath  = openapi.BasePath + "/user/phone/verify"
	confirmPath = openapi.BasePath + openapi.ConfirmPath
)

func TestFaults(t *testing.T) {
	if os.Getenv("USERPHONE_FAULTS") != "1" {
		t.Skip("the fault suite restarts the shared PostgreSQL; run it alone with " +
			"USERPHONE_FAULTS=1 USERPHONE_TEST_STRICT=1 go test -count=1 -run TestFaults -timeout 5m ./faults/")
	}
	started := time.Now()
	s := &suite{t: t, stats: map[string]int{}, verified: map[string]vuser{}}
	dbURL := s.database()
	bin := testenv.BuildUserphone(t)

	s.smtp = testservers.StartSMTP(t)
	webhookSecret := randomHex(32)
	s.rcv = testservers.StartWebhook(t, webhookSecret)

	dataDir := t.TempDir()
	// The dev signing key is made here, before any replica starts, so that
	// all of them load the same one.
	keys, err := auth.LoadOrCreateDevKeys(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	s.keys = keys
	s.runID = randomHex(4)

	addrs := make([]string, replicas)
	for i := range addrs {
		addrs[i] = testenv.FreeAddr(t)
	}
	envs := append(testenv.Environ(nil),
		"USERPHONE_DATA_DIR="+dataDir,
		"USERPHONE_DATABASE_URL="+dbURL,
		"USERPHONE_DATABASE_MAX_CONNS=8",
		"USERPHONE_PUBLIC_URL=http://"+addrs[0],
		"USERPHONE_SECRET="+randomHex(32),
		"USERPHONE_METRICS_ADDR=",
		"USERPHONE_LOG_LEVEL=info",
		"USERPHONE_SHUTDOWN_TIMEOUT=5s",
		"USERPHONE_SMS_PROVIDER=webhook",
		"USERPHONE_SMS_WEBHOOK_URL="+s.rcv.URL(),
		"USERPHONE_SMS_WEBHOOK_SECRET="+webhookSecret,
		"USERPHONE_SMTP_URL="+s.smtp.URL(),
		"USERPHONE_SMTP_TLS=none",
		"USERPHONE_MAIL_FROM=userphone@example.com",
		"USERPHONE_DELIVERY_FIRST_RETRY=1s",
		"USERPHONE_DELIVERY_MAX_ATTEMPTS=15",
		// A send the SIGKILL cuts off is handed to a live replica after
		// this (the minimum, just over the 20 s job timeout), plus at most
		// 30 s until the leader's rescuer looks.
		"USERPHONE_DELIVERY_RESCUE_AFTER=21s",
		"USERPHONE_LIMITS=off",
		// Dev sign-in on PostgreSQL, on purpose: the suite mints its tokens.
		"USERPHONE_DEV=1",
	)
	for i, addr := range addrs {
		r := startReplica(t, bin, fmt.Sprintf("replica-%d", i+1), addr, envs)
		s.replicas = append(s.replicas, r)
		// The first one migrates the database; the others start on it.
		testenv.WaitStatus(t, r.base+"/health/ready", http.StatusOK, 60*time.Second)
		if t.Failed() {
			t.Fatalf("%s did not start:\n%s", r.name, r.logs.String())
		}
	}
	client := contract.Client(t)
	client.Timeout = 20 * time.Second
	s.hc = client
	t.Logf("%d replicas ready after %v", replicas, time.Since(started).Round(time.Millisecond))

	// The load.
	stop, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.work(stop, w)
		}()
	}
	loadStart := time.Now()
	phase := func(name string) { t.Logf("%6.1fs  %s", time.Since(loadStart).Seconds(), name) }

	phase("load on " + strconv.Itoa(replicas) + " replicas")
	time.Sleep(warmUp)
	killed := s.replicas[1]
	// The receiver takes each SMS and holds its answer for a while, so that
	// the kill finds sends in flight: the killed replica's jobs stay
	// "running" until the rescue sends them again, under the same key.
	s.rcv.HoldAnswers(3 * time.Second)
	time.Sleep(1500 * time.Millisecond)
	phase("SIGKILL " + killed.name + " (SMS answers held)")
	killed.kill()
	s.rcv.HoldAnswers(0)
	phase(fmt.Sprintf("sends running at the kill: %s", jobStates(dbURL)))

	time.Sleep(afterKill)
	phase("restart PostgreSQL")
	restartPostgres(t)
	phase("PostgreSQL is back; sends: " + jobStates(dbURL))

	phase("SMTP server down")
	s.smtp.Down()
	time.Sleep(smtpDown)
	s.smtp.Up()
	phase("SMTP server up again (same port)")

	phase("SMS receiver answers 500")
	s.rcv.FailWith(http.StatusInternalServerError)
	time.Sleep(receiverDown)
	s.rcv.FailWith(0)
	phase("SMS receiver healthy again")

	stopLoad()
	wg.Wait()
	loadStop := time.Now()
	phase("load stopped; waiting for the messages still owed")

	missing := s.waitOwed(drainWithin)
	left := s.waitQueue(dbURL, time.Until(loadStop.Add(drainWithin)))
	s.rescued = countRescued(t, dbURL)
	phase(fmt.Sprintf("drained (%d sends left in the queue)", left))
	if left > 0 {
		t.Errorf("%d sends are still queued or running %v after the load stopped", left, drainWithin)
	}

	// The assertions.
	for _, m := range missing {
		t.Errorf("never delivered: %s to %s (%s, accepted %s before the drain ended)", m.channel, m.to, m.why, time.Since(m.since).Round(time.Second))
		if m.channel == "sms" {
			t.Logf("what the database knows of %s:\n%s", m.to, explain(dbURL, m.to))
		}
	}
	s.checkDuplicates()
	s.mu.Lock()
	for _, b := range s.bad {
		t.Errorf("%s", b)
	}
	s.mu.Unlock()
	for _, r := range s.replicas {
		if r == killed {
			continue
		}
		if r.exitedEarly() {
			t.Errorf("%s exited during the faults", r.name)
			continue
		}
		testenv.WaitStatus(t, r.base+"/health/ready", http.StatusOK, 10*time.Second)
		s.freshChangeOn(r)
	}
	s.checkVerified()
	s.summary(time.Since(started))
	if t.Failed() {
		dir, err := os.MkdirTemp("", "userphone-faults-")
		if err == nil {
			for _, r := range s.replicas {
				_ = os.WriteFile(filepath.Join(dir, r.name+".log"), []byte(r.logs.String()), 0o644)
				t.Logf("%s: warnings and errors (the whole log is in %s):\n%s", r.name, dir, notable(r.logs.String(), 40))
			}
		}
	}
}

// suite is the state of one run.
type suite struct {
	t        *testing.T
	hc       *http.Client
	keys     *auth.DevKeys
	runID    string
	replicas []*replica
	smtp     *testservers.SMTP
	rcv      *testservers.Webhook
	rr       atomic.Uint64
	users    atomic.Int64
	numbers  atomic.Int64

	mu       sync.Mutex
	stats    map[string]int   // "op status" → count
	bad      []string         // 501s, 503 without Retry-After, broken answers
	owed     []owed           // messages the accepted changes owe
	verified map[string]vuser // sub → the user, with the number verified last
	// Message-IDs the SMTP server took more than once.
	emailDuplicates int
	// Sends the SIGKILL cut off that River's rescuer handed on.
	rescued int
}

type vuser struct {
	sub, email, token string
	number            string // the verified number
}

// owed is a message an accepted change must bring: an SMS to a number or
// an e-mail to an address.
type owed struct {
	channel, to, why string
	since            time.Time
}

// owe notes a message the request sent at since made owed. since is when
// the request left, not when its answer came: the message may arrive
// before the answer does.
func (s *suite) owe(channel, to, why string, since time.Time) {
	s.mu.Lock()
	s.owed = append(s.owed, owed{channel, to, why, since})
	s.mu.Unlock()
}

func (s *suite) count(op, status string) {
	s.mu.Lock()
	s.stats[op+" "+status]++
	s.mu.Unlock()
}

func (s *suite) fail(format string, args ...any) {
	s.mu.Lock()
	s.bad = append(s.bad, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *suite) newUser() vuser {
	n := s.users.Add(1)
	sub := fmt.Sprintf("faults-%s-%d", s.runID, n)
	email := sub + "@example.com"
	tok, err := s.keys.Mint(userphone.Identity{Subject: sub, Email: email, Scopes: auth.AllScopes}, time.Hour, time.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	return vuser{sub: sub, email: email, token: tok}
}

// nextNumber is a distinct German mobile number (+49 176 and eight
// digits), so that no verification ever takes another user's number.
func (s *suite) nextNumber() string {
	return fmt.Sprintf("+49176%08d", 10_000_000+s.numbers.Add(1))
}

// replicaFor picks the next live replica, round robin.
func (s *suite) replicaFor() *replica {
	for {
		r := s.replicas[s.rr.Add(1)%uint64(len(s.replicas))]
		if !r.dead.Load() {
			return r
		}
	}
}

// call sends one request to a live replica and returns the answer. A
// connection error (a killed replica) and 503 (the database restarting)
// are retried, on the next replica, for up to a minute; retried reports
// whether the request may have been sent more than once.
func (s *suite) call(ctx context.Context, op, method, path, token, contentType, body string) (status int, resp []byte, retried bool) {
	deadline := time.Now().Add(60 * time.Second)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			retried = true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, nil, retried
		}
		r := s.replicaFor()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, r.base+path, rd)
		if err != nil {
			s.t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		res, err := s.hc.Do(req)
		if err != nil {
			s.count(op, "conn-error")
			time.Sleep(100 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		s.count(op, strconv.Itoa(res.StatusCode))
		switch res.StatusCode {
		case http.StatusNotImplemented:
			s.fail("%s %s on %s answered 501: %s", method, path, r.name, b)
			return res.StatusCode, b, retried
		case http.StatusServiceUnavailable:
			ra, err := strconv.Atoi(res.Header.Get("Retry-After"))
			if err != nil || ra < 0 {
				s.fail("%s %s on %s answered 503 without a Retry-After in seconds (%q)", method, path, r.name, res.Header.Get("Retry-After"))
				ra = 1
			}
			time.Sleep(min(time.Duration(ra)*time.Second, 2*time.Second))
			continue
		}
		return res.StatusCode, b, retried
	}
}

func phoneBody(number string) string {
	return `{"data":{"type":"phone","attributes":{"phoneNumber":"` + number + `"}}}`
}

// work runs users through their changes until stop: a first number (PUT,
// the SMS code, verify), and for every other user a second one (PUT, the
// e-mail's link, the confirmation page and its form, the SMS code, verify).
func (s *suite) work(stop context.Context, w int) {
	for i := 0; stop.Err() == nil; i++ {
		u := s.newUser()
		first := s.nextNumber()
		if !s.changeTo(stop, &u, first, "first", false) {
			continue
		}
		if (w+i)%2 == 1 {
			continue
		}
		s.changeTo(stop, &u, s.nextNumber(), "change", true)
	}
}

// changeTo takes u to number and verifies it; it returns whether the
// number was verified.
func (s *suite) changeTo(stop context.Context, u *vuser, number, op string, viaEmail bool) bool {
	since := time.Now()
	status, b, _ := s.call(stop, op+"-put", "PUT", apiPath, u.token, "application/vnd.api+json", phoneBody(number))
	if status == 0 {
		return false
	}
	if status != http.StatusCreated {
		s.fail("%s: PUT %s answered %d, want 201: %s", u.sub, number, status, b)
		return false
	}
	if viaEmail {
		s.owe("email", u.email, u.sub+" changes to "+number, since)
		link, ok := s.waitMail(stop, u.email)
		if !ok {
			return false
		}
		token, err := tokenOfLink(link)
		if err != nil {
			s.fail("%s: %v", u.sub, err)
			return false
		}
		status, b, _ = s.call(stop, op+"-confirm-page", "GET", confirmPath+"?token="+url.QueryEscape(token), "", "", "")
		if status == 0 {
			return false
		}
		if status != http.StatusOK {
			s.fail("%s: the confirmation page answered %d: %s", u.sub, status, b)
			return false
		}
		since = time.Now()
		status, b, _ = s.call(stop, op+"-confirm-post", "POST", confirmPath, "", "application/x-www-form-urlencoded",
			url.Values{"token": {token}}.Encode())
		if status == 0 {
			return false
		}
		if status != http.StatusOK {
			s.fail("%s: posting the confirmation form answered %d: %s", u.sub, status, b)
			return false
		}
	}
	s.owe("sms", number, u.sub+" asks for "+number, since)
	for try := 0; try < 3; try++ {
		code, ok := s.rcv.WaitCode(stop, number, since)
		if !ok {
			return false
		}
		status, b, retried := s.call(stop, op+"-verify", "PUT", verifyPath, u.token, "application/json", `{"code":"`+code+`"}`)
		switch {
		case status == 0:
			return false
		case status == http.StatusOK:
			s.verifiedAs(u, number)
			return true
		case retried && s.hasVerified(stop, u, number):
			// The first try went through before its connection broke.
			s.verifiedAs(u, number)
			return true
		case status == http.StatusUnprocessableEntity:
			// A newer code (a resend) replaced this one: take the latest.
			time.Sleep(200 * time.Millisecond)
		default:
			s.fail("%s: verify %s answered %d: %s", u.sub, number, status, b)
			return false
		}
	}
	s.fail("%s: no code for %s was accepted", u.sub, number)
	return false
}

func (s *suite) verifiedAs(u *vuser, number string) {
	u.number = number
	s.mu.Lock()
	s.verified[u.sub] = *u
	s.mu.Unlock()
}

// phoneOf is GET /user/phone: the status and the number.
func (s *suite) phoneOf(ctx context.Context, u vuser) (int, string) {
	status, b, _ := s.call(ctx, "check", "GET", apiPath, u.token, "", "")
	var doc struct {
		Data struct {
			Attributes struct {
				PhoneNumber string `json:"phoneNumber"`
			} `json:"attributes"`
		} `json:"data"`
	}
	_ = json.Unmarshal(b, &doc)
	return status, doc.Data.Attributes.PhoneNumber
}

func (s *suite) hasVerified(ctx context.Context, u *vuser, number string) bool {
	status, got := s.phoneOf(ctx, *u)
	return status == http.StatusOK && got == number
}

// waitMail waits for the confirmation e-mail to addr and returns its link.
func (s *suite) waitMail(stop context.Context, addr string) (string, bool) {
	for stop.Err() == nil {
		for _, m := range s.smtp.To(addr) {
			if link := confirmLink.FindString(m.Text); link != "" {
				return link, true
			}
		}
		sleep(stop, 25*time.Millisecond)
	}
	return "", false
}

var confirmLink = regexp.MustCompile(`https?://[^\s"<>]+[?&]token=[A-Za-z0-9_-]+`)

func tokenOfLink(link string) (string, error) {
	u, err := url.Parse(link)
	if err != nil || u.Query().Get("token") == "" {
		return "", fmt.Errorf("the e-mail's link %q has no token", link)
	}
	return u.Query().Get("token"), nil
}

// waitQueue waits, at most within, until no send is queued, running or
// waiting for a retry (an orphan the rescue has yet to hand on is
// "running"); it returns how many are left.
func (s *suite) waitQueue(dbURL string, within time.Duration) int {
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(within)
	for {
		var n int
		err := db.QueryRow(`SELECT count(*) FROM river_job WHERE kind = 'send_message'
			AND state IN ('available', 'running', 'retryable', 'scheduled', 'pending')`).Scan(&n)
		if err != nil {
			s.t.Errorf("count the queued sends: %v", err)
			return -1
		}
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// jobStates counts the sends by state, e.g. "completed=10 running=2".
func jobStates(dbURL string) string {
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		return err.Error()
	}
	defer db.Close()
	rows, err := db.Query(`SELECT state, count(*) FROM river_job WHERE kind = 'send_message' GROUP BY state ORDER BY state`)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var st string
		var n int
		_ = rows.Scan(&st, &n)
		parts = append(parts, fmt.Sprintf("%s=%d", st, n))
	}
	return strings.Join(parts, " ")
}

// countRescued counts the sends that River's rescuer took back from a
// replica that stopped working on them (the killed one).
func countRescued(t *testing.T, dbURL string) int {
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM river_job WHERE kind = 'send_message'
		AND errors::text ILIKE '%stuck%'`).Scan(&n); err != nil {
		t.Errorf("count the rescued sends: %v", err)
	}
	return n
}

// waitOwed waits until every owed message arrived, at most within; it
// returns those still missing, and notes each delivery's delay.
func (s *suite) waitOwed(within time.Duration) []owed {
	deadline := time.Now().Add(within)
	for {
		var missing []owed
		s.mu.Lock()
		owed := append([]owed(nil), s.owed...)
		s.mu.Unlock()
		for _, o := range owed {
			if at, ok := s.arrived(o); !ok {
				missing = append(missing, o)
			} else {
				s.noteDelay(at.Sub(o.since))
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(250 * time.Millisecond)
	}
}

var maxDelay atomic.Int64

func (s *suite) noteDelay(d time.Duration) {
	for {
		cur := maxDelay.Load()
		if int64(d) <= cur || maxDelay.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// arrived reports whether the message o owes arrived, and when first.
func (s *suite) arrived(o owed) (time.Time, bool) {
	if o.channel == "sms" {
		return s.rcv.FirstTakenSince(o.to, o.since)
	}
	for _, m := range s.smtp.To(o.to) {
		if !m.At.Before(o.since) {
			return m.At, true
		}
	}
	return time.Time{}, false
}

// checkDuplicates: the attempts that share an Idempotency-Key (SMS) or a
// Message-ID (e-mail, derived from the same key) carry the same text, and
// an SMS answered 500 came again under its key until it was taken.
func (s *suite) checkDuplicates() {
	for key, all := range s.rcv.ByKey() {
		taken := false
		for _, m := range all {
			if m.Text != all[0].Text || m.To != all[0].To {
				s.t.Errorf("Idempotency-Key %s: %q to %s, then %q to %s", key, all[0].Text, all[0].To, m.Text, m.To)
			}
			taken = taken || m.Taken()
		}
		if !taken {
			s.t.Errorf("Idempotency-Key %s (SMS to %s): answered 500 %d times and never sent again under that key", key, all[0].To, len(all))
		}
	}
	byID := map[string][]testservers.Mail{}
	for _, m := range s.smtp.Mails() {
		id := m.Header.Get("Message-Id")
		if id == "" {
			s.t.Errorf("an e-mail to %v has no Message-ID", m.To)
			continue
		}
		byID[id] = append(byID[id], m)
	}
	for id, all := range byID {
		for _, m := range all[1:] {
			if m.Text != all[0].Text || strings.Join(m.To, ",") != strings.Join(all[0].To, ",") {
				s.t.Errorf("Message-ID %s: two different e-mails", id)
			}
		}
		if len(all) > 1 {
			s.mu.Lock()
			s.emailDuplicates++
			s.mu.Unlock()
		}
	}
}

// freshChangeOn puts a new user's first number through r alone and
// verifies it: the replica works after the faults without a restart.
func (s *suite) freshChangeOn(r *replica) {
	u := s.newUser()
	number := s.nextNumber()
	since := time.Now()
	do := func(op, method, path, ctype, body string) (int, []byte) {
		req, _ := http.NewRequest(method, r.base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+u.token)
		req.Header.Set("Content-Type", ctype)
		res, err := s.hc.Do(req)
		if err != nil {
			s.t.Errorf("%s after the faults: %s %s: %v", r.name, method, path, err)
			return 0, nil
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		s.count("after-"+op, strconv.Itoa(res.StatusCode))
		return res.StatusCode, b
	}
	if st, b := do("put", "PUT", apiPath, "application/vnd.api+json", phoneBody(number)); st != http.StatusCreated {
		s.t.Errorf("%s after the faults: PUT answered %d: %s", r.name, st, b)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, ok := s.rcv.WaitCode(ctx, number, since)
	if !ok {
		s.t.Errorf("%s after the faults: no SMS to %s within 20 s", r.name, number)
		return
	}
	if st, b := do("verify", "PUT", verifyPath, "application/json", `{"code":"`+code+`"}`); st != http.StatusOK {
		s.t.Errorf("%s after the faults: verify answered %d: %s", r.name, st, b)
		return
	}
	s.verifiedAs(&u, number)
}

// checkVerified: every verification that completed is still there.
func (s *suite) checkVerified() {
	s.mu.Lock()
	users := make([]vuser, 0, len(s.verified))
	for _, u := range s.verified {
		users = append(users, u)
	}
	s.mu.Unlock()
	ctx := context.Background()
	for _, u := range users {
		status, number := s.phoneOf(ctx, u)
		if status != http.StatusOK || number != u.number {
			s.t.Errorf("%s verified %s, but GET /user/phone answers %d with %q", u.sub, u.number, status, number)
		}
	}
	s.t.Logf("%d completed verifications checked", len(users))
}

func (s *suite) summary(wall time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.stats))
	for k := range s.stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "fault suite summary (%v wall time)\n", wall.Round(time.Second))
	fmt.Fprintf(&b, "  requests by operation and status:\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "    %-28s %d\n", k, s.stats[k])
	}
	r := s.rcv.Counts()
	fmt.Fprintf(&b, "  users %d, changes owed a message %d, verified users %d\n", s.users.Load(), len(s.owed), len(s.verified))
	fmt.Fprintf(&b, "  SMS: %d keys, %d taken, %d answered 500, %d keys sent more than once (same text each time), "+
		"%d sent again after they were taken and answered as duplicates (sends the kill cut off, rescued)\n",
		r.Keys, r.Taken, r.Refused, r.Retried, r.Duplicates)
	fmt.Fprintf(&b, "  sends the SIGKILL cut off and the rescuer handed on: %d\n", s.rescued)
	fmt.Fprintf(&b, "  e-mails taken %d (%d Message-IDs taken more than once)\n", len(s.smtp.Mails()), s.emailDuplicates)
	fmt.Fprintf(&b, "  max delay from accepted change to first message: %v\n", time.Duration(maxDelay.Load()).Round(time.Millisecond))
	s.t.Log(b.String())
}

// replica is one userphone serve process.
type replica struct {
	name, base string
	cmd        *exec.Cmd
	logs       testenv.SyncBuffer
	dead       atomic.Bool // killed by the test
	exited     chan struct{}
}

func startReplica(t *testing.T, bin, name, addr string, env []string) *replica {
	r := &replica{name: name, base: "http://" + addr, exited: make(chan struct{})}
	r.cmd = exec.Command(bin, "serve")
	r.cmd.Env = append(append([]string(nil), env...), "USERPHONE_ADDR="+addr)
	r.cmd.Stdout, r.cmd.Stderr = &r.logs, &r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = r.cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(10 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	})
	return r
}

func (r *replica) kill() {
	r.dead.Store(true)
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

func (r *replica) exitedEarly() bool {
	select {
	case <-r.exited:
		return true
	default:
		return false
	}
}

// database creates a database of the run's own and drops it at the end.
func (s *suite) database() string {
	t := s.t
	base := storetest.PostgresURL()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		testenv.Missing(t, "PostgreSQL at "+base, err)
	}
	name := "userphone_faults_" + randomHex(6)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	// Registered after the replicas' cleanups run (LIFO): PostgreSQL is
	// up again, and the replicas have stopped, before the database goes.
	t.Cleanup(func() {
		ensurePostgres(t)
		admin, err := sql.Open("pgx", base)
		if err != nil {
			t.Error(err)
			return
		}
		defer admin.Close()
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop the fault suite's database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// restartPostgres restarts the cluster and waits until it accepts
// connections again.
func restartPostgres(t *testing.T) {
	t.Helper()
	ver := postgresVersion(t)
	out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", ver, "main", "restart").CombinedOutput()
	if err != nil {
		t.Fatalf("pg_ctlcluster %s main restart: %v\n%s", ver, err, out)
	}
	if !waitPostgres(30 * time.Second) {
		t.Fatal("PostgreSQL did not come back within 30 s of its restart")
	}
}

// ensurePostgres starts PostgreSQL if the test left it down (a failure
// between the restart's stop and start).
func ensurePostgres(t *testing.T) {
	if waitPostgres(2 * time.Second) {
		return
	}
	out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", postgresVersion(t), "main", "start").CombinedOutput()
	if err != nil {
		t.Errorf("start PostgreSQL again: %v\n%s", err, out)
	}
	if !waitPostgres(30 * time.Second) {
		t.Error("PostgreSQL is not running after the fault suite")
	}
}

func postgresVersion(t *testing.T) string {
	if v := os.Getenv("USERPHONE_FAULTS_PG_VERSION"); v != "" {
		return v
	}
	entries, err := os.ReadDir("/etc/postgresql")
	if err != nil || len(entries) == 0 {
		testenv.Missing(t, "a PostgreSQL cluster under /etc/postgresql to restart", err)
	}
	return entries[len(entries)-1].Name()
}

func waitPostgres(within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if exec.Command("pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432").Run() == nil {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// notable is the last n lines of a replica's log that are not INFO.
func notable(log string, n int) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if l != "" && !strings.Contains(l, "level=INFO") {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "\n")
}

// explain lists the changes to number, their events and their send jobs,
// for a message that never came.
func explain(dbURL, number string) string {
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		return err.Error()
	}
	defer db.Close()
	var b strings.Builder
	dump := func(title, query string, args ...any) {
		fmt.Fprintf(&b, "  %s:\n", title)
		rows, err := db.Query(query, args...)
		if err != nil {
			fmt.Fprintf(&b, "    %v\n", err)
			return
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			_ = rows.Scan(ptrs...)
			var parts []string
			for i, c := range cols {
				v := vals[i]
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				parts = append(parts, fmt.Sprintf("%s=%v", c, v))
			}
			fmt.Fprintf(&b, "    %s\n", strings.Join(parts, " "))
		}
	}
	dump("phone_changes", `SELECT id, user_id, status, sends, attempts, cancel_reason, created_at, updated_at, closed_at, version
		FROM phone_changes WHERE phone_number = $1`, number)
	dump("phone_events", `SELECT e.at, e.kind, e.change_id, e.request_id, e.detail FROM phone_events e
		WHERE e.change_id IN (SELECT id FROM phone_changes WHERE phone_number = $1) ORDER BY e.id`, number)
	dump("river_job", `SELECT id, state, attempt, max_attempts, args, attempted_by, errors, created_at, attempted_at, finalized_at
		FROM river_job WHERE args->>'change_id' IN (SELECT id FROM phone_changes WHERE phone_number = $1) ORDER BY id`, number)
	return b.String()
}
