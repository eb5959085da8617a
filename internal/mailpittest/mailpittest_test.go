package mailpittest_test

import (
	"encoding/json"
	"net/http"
	"net/smtp"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone/internal/mailpittest"
)

// A message sent to the SMTP port is found through the HTTP API, as the
// contract test reads it: search by recipient, then the message's text.
func TestAMessageSentOverSMTPIsReadThroughTheAPI(t *testing.T) {
	t.Parallel()
	m := mailpittest.Start(t)
	msg := "From: noreply@example.com\r\nTo: qa@example.com\r\nSubject: Hello\r\n\r\nThe link: https://example.com/x?token=abc\r\n"
	if err := smtp.SendMail(m.SMTPAddr(), nil, "noreply@example.com", []string{"qa@example.com"}, []byte(msg)); err != nil {
		t.Fatalf("send: %v", err)
	}
	var list struct {
		Messages []struct{ ID, Subject string }
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(list.Messages) == 0 {
		getJSON(t, m.APIURL()+"/api/v1/search?"+url.Values{"query": {`to:"qa@example.com"`}}.Encode(), &list)
		if time.Now().After(deadline) {
			t.Fatal("mailpit lists no message to qa@example.com within 10 s")
		}
	}
	if list.Messages[0].Subject != "Hello" {
		t.Fatalf("the subject is %q, want Hello", list.Messages[0].Subject)
	}
	var one struct{ Text string }
	getJSON(t, m.APIURL()+"/api/v1/message/"+list.Messages[0].ID, &one)
	if !strings.Contains(one.Text, "https://example.com/x?token=abc") {
		t.Fatalf("the message's text %q lacks its link", one.Text)
	}
}

func getJSON(t *testing.T, u string, out any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}
