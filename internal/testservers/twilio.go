package testservers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TwilioSID and TwilioToken are the credentials the stand-in accepts.
const (
	TwilioSID   = "AC00000000000000000000000000000001"
	TwilioToken = "test-auth-token"
	TwilioFrom  = "+15005550006"
)

// SMS is one message the Twilio stand-in accepted.
type SMS struct {
	To, From, Body, IdempotencyKey string
}

// Twilio is a stand-in for Twilio's Messages API: the same path, form
// fields, basic auth, status codes and JSON bodies, so the real client
// code runs against it.
type Twilio struct {
	srv *httptest.Server

	mu       sync.Mutex
	accepted []SMS
	requests int
	// script answers the next requests with these statuses (201 = accept);
	// when it runs out, requests are accepted.
	script []int
	// errorCode is Twilio's error code for scripted 4xx answers.
	errorCode int
}

// StartTwilio starts the stand-in.
func StartTwilio(t testing.TB) *Twilio {
	tw := &Twilio{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{sid}/Messages.json", tw.messages)
	tw.srv = httptest.NewServer(mux)
	t.Cleanup(tw.srv.Close)
	return tw
}

// URL is the API base, for USERPHONE_TWILIO_API_URL.
func (tw *Twilio) URL() string { return tw.srv.URL }

// Script makes the next requests answer with statuses, in order; for a
// 4xx, code is Twilio's error code (e.g. 21211, invalid To number).
func (tw *Twilio) Script(code int, statuses ...int) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.script, tw.errorCode = statuses, code
}

// Accepted returns the messages answered with 201.
func (tw *Twilio) Accepted() []SMS {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return append([]SMS(nil), tw.accepted...)
}

// Requests counts every request, accepted or not.
func (tw *Twilio) Requests() int {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return tw.requests
}

func (tw *Twilio) messages(w http.ResponseWriter, r *http.Request) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.requests++
	sid, token, ok := r.BasicAuth()
	if !ok || sid != TwilioSID || token != TwilioToken || r.PathValue("sid") != TwilioSID {
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	if err := r.ParseForm(); err != nil || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		twilioError(w, http.StatusBadRequest, 21601, "The request body must be form-encoded")
		return
	}
	to, body := r.PostForm.Get("To"), r.PostForm.Get("Body")
	from, service := r.PostForm.Get("From"), r.PostForm.Get("MessagingServiceSid")
	switch {
	case to == "":
		twilioError(w, http.StatusBadRequest, 21604, "A 'To' phone number is required.")
		return
	case body == "":
		twilioError(w, http.StatusBadRequest, 21602, "Message body is required.")
		return
	case from == "" && service == "":
		twilioError(w, http.StatusBadRequest, 21603, "A 'From' phone number is required.")
		return
	}
	if len(tw.script) > 0 {
		status := tw.script[0]
		tw.script = tw.script[1:]
		if status != http.StatusCreated {
			code := tw.errorCode
			if status >= 500 {
				code = 20500
			} else if status == http.StatusTooManyRequests {
				code = 20429
			}
			twilioError(w, status, code, http.StatusText(status))
			return
		}
	}
	tw.accepted = append(tw.accepted, SMS{To: to, From: from, Body: body, IdempotencyKey: r.Header.Get("Idempotency-Key")})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{
		"sid": fmt.Sprintf("SM%032d", len(tw.accepted)), "account_sid": TwilioSID,
		"to": to, "from": from, "body": body, "status": "queued", "direction": "outbound-api",
		"error_code": nil, "error_message": nil, "num_segments": "1",
	})
}

// twilioError answers in Twilio's error format.
func twilioError(w http.ResponseWriter, status, code int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"code": code, "message": message, "status": status,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
	})
}
