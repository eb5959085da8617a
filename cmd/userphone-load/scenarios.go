package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/pace/userphone/gen/api"
)

// scenario is a sequence of requests one iteration makes, the operations
// it reports, and what it needs prepared first.
type scenario struct {
	name    string
	summary string
	ops     []opSpec
	// needsSMS and needsEmail say which messages the iterations wait for.
	needsSMS, needsEmail bool
	// freshUsers: every iteration takes a new user.
	freshUsers bool
	prepare    func(ctx context.Context, e *loadEnv) error
	iterate    func(ctx context.Context, w *worker) error
}

// Operation names, as the report shows them.
const (
	opCheck        = "check"
	opPut          = "put"
	opVerify       = "verify"
	opPutFirst     = "put-first"
	opVerifyFirst  = "verify-first"
	opPutSecond    = "put-second"
	opConfirmPage  = "confirm-page"
	opConfirmPost  = "confirm-post"
	opVerifySecond = "verify-second"
	opSMSWait      = "sms-wait"
	opEmailWait    = "email-wait"
	opBaseline     = "baseline"
)

var smsWait = opSpec{name: opSMSWait}
var emailWait = opSpec{name: opEmailWait}

// scenarios returns the scenarios by name. Users of a token file are asked
// once before the check scenario, and each must keep giving that answer;
// minted users are prepared to give checkStatus.
func scenarios(checkStatus int, tokenFile bool) map[string]*scenario {
	checkSummary := fmt.Sprintf("GET /user/phone for prepared users; every answer must be %d", checkStatus)
	checkExpected := []int{checkStatus}
	if tokenFile {
		checkSummary = "GET /user/phone for the token file's users; each must keep the answer it gave before the run"
		checkExpected = []int{200, 201, 404}
	}
	return map[string]*scenario{
		"check": {
			name:    "check",
			summary: checkSummary,
			ops:     []opSpec{{name: opCheck, http: true, expected: checkExpected}},
			prepare: prepareCheck,
			iterate: iterateCheck,
		},
		"request": {
			name:       "request",
			summary:    "PUT /user/phone: a first number for a new user, 201 (the SMS goes out; nobody waits for it)",
			ops:        []opSpec{{name: opPut, http: true, expected: []int{http.StatusCreated}}},
			freshUsers: true,
			iterate:    iterateRequest,
		},
		"verify": {
			name:       "verify",
			summary:    "PUT /user/phone (first number, 201), the SMS code from the webhook, PUT /user/phone/verify (200)",
			ops:        []opSpec{{name: opPut, http: true, expected: []int{201}}, smsWait, {name: opVerify, http: true, expected: []int{200}}},
			needsSMS:   true,
			freshUsers: true,
			iterate:    iterateVerify,
		},
		"flow": {
			name: "flow",
			summary: "a first number verified, then a change: PUT, the e-mail link from the outbox, " +
				"GET the page and POST its form, the SMS code, verify",
			ops: []opSpec{
				{name: opPutFirst, http: true, expected: []int{201}}, smsWait, {name: opVerifyFirst, http: true, expected: []int{200}},
				{name: opPutSecond, http: true, expected: []int{201}}, emailWait,
				{name: opConfirmPage, http: true, expected: []int{200}}, {name: opConfirmPost, http: true, expected: []int{200}},
				{name: opVerifySecond, http: true, expected: []int{200}},
			},
			needsSMS: true, needsEmail: true, freshUsers: true,
			iterate: iterateFlow,
		},
		// The floors: a bare net/http + pgx server doing the primitive
		// work of a GET and a PUT (floor.go).
		floorSelect: {
			name:    floorSelect,
			summary: "the floor of a GET: net/http + pgx in this process, one primary-key SELECT (needs -database-url)",
			ops:     []opSpec{{name: "select", http: true, expected: []int{200}}},
			iterate: iterateFloor(http.MethodGet, "/select"),
		},
		floorTx: {
			name:    floorTx,
			summary: "the floor of a PUT: net/http + pgx in this process, one transaction of an upsert and two inserts (needs -database-url)",
			ops:     []opSpec{{name: "tx", http: true, expected: []int{200}}},
			iterate: iterateFloor(http.MethodPut, "/tx"),
		},
		// The bare server alone: what this client and machine manage at
		// most, without userphone.
		"baseline": {
			name:    "baseline",
			summary: "only the bare net/http server in this process (the client's ceiling)",
			ops:     []opSpec{{name: opBaseline, http: true, expected: []int{200}}},
			iterate: iterateBaseline,
		},
	}
}

// errAbort ends an iteration whose step failed; the failure is already
// counted.
var errAbort = errors.New("iteration aborted")

// errNoUsers ends a worker when the token file has run out.
var errNoUsers = errors.New("no unused tokens left")

// worker is one connection's loop.
type worker struct {
	id  int
	env *loadEnv
	buf bytes.Buffer
	// intended is when the iteration should have started, in an open loop:
	// its first request's latency counts from then, so a server that falls
	// behind shows it (no coordinated omission).
	intended time.Time
	next     int // the check scenario's round robin
	// rec takes the outcomes of the iteration in progress.
	rec *recorder
	// want, when set, is the one status this request must get; any other
	// is labelled as unexpected even if the operation allows it for
	// other users.
	want int
}

func bearer(token string) api.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// record files an outcome of the worker's iteration.
func (w *worker) record(op, label string, d time.Duration, detail func() string) bool {
	return w.env.record(w.rec, op, label, d, detail)
}

// call sends one request as op, reads the whole answer and records it.
func (w *worker) call(ctx context.Context, op string, send func(context.Context) (*http.Response, error)) bool {
	start := time.Now()
	if !w.intended.IsZero() {
		start, w.intended = w.intended, time.Time{}
	}
	w.buf.Reset()
	resp, err := send(ctx)
	label := labelNetError
	if err == nil {
		_, err = w.buf.ReadFrom(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err == nil {
			label = strconv.Itoa(resp.StatusCode)
			if w.want != 0 && resp.StatusCode != w.want {
				label = fmt.Sprintf("%d≠%d", resp.StatusCode, w.want)
			}
		}
	}
	return w.record(op, label, time.Since(start), func() string {
		if err != nil {
			return err.Error()
		}
		return snippet(w.buf.Bytes())
	})
}

// snippet shortens an answer for the error samples.
func snippet(b []byte) string {
	const limit = 300
	if len(b) > limit {
		b = b[:limit]
		for len(b) > 0 && !utf8.Valid(b) {
			b = b[:len(b)-1]
		}
		return string(b) + "…"
	}
	return string(b)
}

func (w *worker) put(ctx context.Context, op string, u vuser, number string) bool {
	var body api.UpdateUserPhoneApplicationVndAPIPlusJSONRequestBody
	body.Data.Type = api.UpdateUserPhoneRequestDataTypePhone
	body.Data.Attributes.PhoneNumber = number
	return w.call(ctx, op, func(ctx context.Context) (*http.Response, error) {
		return w.env.api.UpdateUserPhoneWithApplicationVndAPIPlusJSONBody(ctx, body, bearer(u.Token))
	})
}

func (w *worker) verify(ctx context.Context, op string, u vuser, code string) bool {
	return w.call(ctx, op, func(ctx context.Context) (*http.Response, error) {
		return w.env.api.VerifyUserPhone(ctx, api.VerifyUserPhoneJSONRequestBody{Code: code}, bearer(u.Token))
	})
}

// await waits for the message expected on ch and records the wait, from
// since (the request that made the server send it) to its arrival.
func (w *worker) await(ctx context.Context, op string, box *mailbox, key string, ch <-chan string, since time.Time) (string, bool) {
	if w.env.waits != nil {
		ctx = w.env.waits
	}
	v, err := box.wait(ctx, key, ch, w.env.cfg.MessageTimeout)
	label := labelOK
	switch {
	case errors.Is(err, errMessageTimeout):
		label = labelTimeout
	case err != nil:
		label = labelNetError
	}
	ok := w.record(op, label, time.Since(since), func() string {
		return fmt.Sprintf("nothing for %s within %s", key, w.env.cfg.MessageTimeout)
	})
	return v, ok && err == nil
}

// putAndCode sends a first number and returns the code the server texted.
func (w *worker) putAndCode(ctx context.Context, op string, u vuser) (code string, ok bool) {
	number, err := w.env.numbers.next()
	if err != nil {
		w.record(op, labelNetError, 0, err.Error)
		return "", false
	}
	ch := w.env.codes.expect(number)
	start := time.Now()
	if !w.put(ctx, op, u, number) {
		w.env.codes.forget(number)
		return "", false
	}
	return w.await(ctx, opSMSWait, w.env.codes, number, ch, start)
}

func (w *worker) freshUser() (vuser, error) {
	u, ok := w.env.users.next()
	if !ok {
		return vuser{}, errNoUsers
	}
	return u, nil
}

func iterateRequest(ctx context.Context, w *worker) error {
	u, err := w.freshUser()
	if err != nil {
		return err
	}
	number, err := w.env.numbers.next()
	if err != nil {
		w.record(opPut, labelNetError, 0, err.Error)
		return errAbort
	}
	if !w.put(ctx, opPut, u, number) {
		return errAbort
	}
	return nil
}

func iterateVerify(ctx context.Context, w *worker) error {
	u, err := w.freshUser()
	if err != nil {
		return err
	}
	code, ok := w.putAndCode(ctx, opPut, u)
	if !ok || w.env.stopping.Load() {
		return errAbort
	}
	if !w.verify(ctx, opVerify, u, code) {
		return errAbort
	}
	return nil
}

func iterateFlow(ctx context.Context, w *worker) error {
	u, err := w.freshUser()
	if err != nil {
		return err
	}
	if u.Email == "" {
		return fmt.Errorf("the token of %s has no email claim: the flow's confirmation e-mail needs one", u.Sub)
	}
	e := w.env
	code, ok := w.putAndCode(ctx, opPutFirst, u)
	if !ok || e.stopping.Load() || !w.verify(ctx, opVerifyFirst, u, code) || e.stopping.Load() {
		return errAbort
	}
	// The change: a confirmation e-mail first.
	second, err := e.numbers.next()
	if err != nil {
		w.record(opPutSecond, labelNetError, 0, err.Error)
		return errAbort
	}
	mail := e.links.expect(u.Email)
	sms := e.codes.expect(second)
	start := time.Now()
	if !w.put(ctx, opPutSecond, u, second) {
		e.links.forget(u.Email)
		e.codes.forget(second)
		return errAbort
	}
	link, ok := w.await(ctx, opEmailWait, e.links, u.Email, mail, start)
	if !ok || e.stopping.Load() {
		e.codes.forget(second)
		return errAbort
	}
	token, err := tokenOfLink(link)
	if err != nil {
		w.record(opConfirmPage, labelNetError, 0, err.Error)
		e.codes.forget(second)
		return errAbort
	}
	// What a person does: open the page, press its button.
	ok = w.call(ctx, opConfirmPage, func(ctx context.Context) (*http.Response, error) {
		return e.api.ShowPhoneConfirmation(ctx, &api.ShowPhoneConfirmationParams{Token: token})
	})
	if !ok || e.stopping.Load() {
		e.codes.forget(second)
		return errAbort
	}
	start = time.Now()
	ok = w.call(ctx, opConfirmPost, func(ctx context.Context) (*http.Response, error) {
		return e.api.ConfirmPhoneChangeWithFormdataBody(ctx, nil, api.ConfirmPhoneChangeFormdataRequestBody{Token: token})
	})
	if !ok {
		e.codes.forget(second)
		return errAbort
	}
	code, ok = w.await(ctx, opSMSWait, e.codes, second, sms, start)
	if !ok || e.stopping.Load() || !w.verify(ctx, opVerifySecond, u, code) {
		return errAbort
	}
	return nil
}

func tokenOfLink(link string) (string, error) {
	u, err := url.Parse(link)
	if err != nil || u.Query().Get("token") == "" {
		return "", fmt.Errorf("the e-mail's link %q has no token", link)
	}
	return u.Query().Get("token"), nil
}

func iterateCheck(ctx context.Context, w *worker) error {
	pool := w.env.checkUsers
	u := pool[(w.id+w.next*w.env.cfg.Concurrency)%len(pool)]
	w.next++
	// A token file's users may differ; each must keep its own answer.
	w.want = u.checkStatus
	defer func() { w.want = 0 }()
	if !w.call(ctx, opCheck, func(ctx context.Context) (*http.Response, error) {
		return w.env.api.CheckUserPhone(ctx, bearer(u.Token))
	}) {
		return errAbort
	}
	return nil
}

func iterateBaseline(ctx context.Context, w *worker) error {
	if !w.call(ctx, opBaseline, func(ctx context.Context) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.env.baselineURL, nil)
		if err != nil {
			return nil, err
		}
		return w.env.hc.Do(req)
	}) {
		return errAbort
	}
	return nil
}

// prepareCheck makes the users the check scenario asks about: with
// -check-status 200 each gets a verified number through the API (PUT, the
// SMS code, verify), with 404 they stay unknown to the server. Users from
// a token file are asked once, and each must keep giving that answer.
func prepareCheck(ctx context.Context, e *loadEnv) error {
	pool := takeCheckUsers(e)
	_, fromFile := e.users.(*tokenFile)
	if !fromFile && e.cfg.CheckStatus == http.StatusNotFound {
		e.checkUsers = pool
		return nil
	}
	if !fromFile && e.cfg.CheckStatus != http.StatusOK {
		return fmt.Errorf("-check-status %d: use 200 (users with a verified number) or 404 (unknown users)", e.cfg.CheckStatus)
	}
	// A recorder of its own: preparing is not measured.
	prep := newRecorder([]opSpec{
		{name: opCheck, http: true, expected: []int{200, 201, 404}},
		{name: opPut, http: true, expected: []int{201}}, smsWait, {name: opVerify, http: true, expected: []int{200}},
	})
	if err := verifyOrProbeEach(ctx, e, prep, pool, fromFile); err != nil {
		return fmt.Errorf("preparing the check scenario's users: %w (%s)", err, failures(prep))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	e.checkUsers = pool
	return nil
}

// takeCheckUsers takes -users users (at most the token file's), each
// expected to answer -check-status.
func takeCheckUsers(e *loadEnv) []vuser {
	n := e.cfg.Users
	if tf, ok := e.users.(*tokenFile); ok {
		n = min(n, len(tf.all))
	}
	pool := make([]vuser, 0, n)
	for range n {
		u, ok := e.users.next()
		if !ok {
			break
		}
		u.checkStatus = e.cfg.CheckStatus
		pool = append(pool, u)
	}
	return pool
}

// verifyOrProbeEach, on -c workers, gives each minted user of pool a
// verified number, or asks once what a token file's user gets. A worker
// whose user failed stops; the first failure is returned.
func verifyOrProbeEach(ctx context.Context, e *loadEnv, prep *recorder, pool []vuser, fromFile bool) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range min(e.cfg.Concurrency, len(pool)) {
		wg.Go(func() {
			w := &worker{id: i, env: e, rec: prep}
			for {
				k := int(next.Add(1) - 1)
				if k >= len(pool) || ctx.Err() != nil {
					return
				}
				var err error
				if fromFile {
					err = w.probe(ctx, &pool[k])
				} else if code, ok := w.putAndCode(ctx, opPut, pool[k]); !ok || !w.verify(ctx, opVerify, pool[k], code) {
					err = fmt.Errorf("could not give %s a verified number", pool[k].Sub)
				}
				if err != nil {
					mu.Lock()
					firstErr = cmpOr(firstErr, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// probe asks once what GET /user/phone answers a token file's user.
func (w *worker) probe(ctx context.Context, u *vuser) error {
	resp, err := w.env.api.CheckUserPhone(ctx, bearer(u.Token))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch resp.StatusCode {
	case 200, 201, 404:
		u.checkStatus = resp.StatusCode
		return nil
	}
	return fmt.Errorf("GET /user/phone for %s answered %d", u.Sub, resp.StatusCode)
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// failures summarises a recorder's unexpected answers.
func failures(r *recorder) string {
	var b bytes.Buffer
	for _, res := range r.results() {
		for _, s := range res.ErrorSamples {
			fmt.Fprintf(&b, "%s %s; ", res.Name, s)
		}
	}
	if b.Len() == 0 {
		return "no failed request"
	}
	return b.String()
}
