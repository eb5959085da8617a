package delivery

import (
	"context"
	"sync"
	"testing"

	"github.com/pace/userphone"
)

type observations struct {
	mu  sync.Mutex
	got []string
}

func (o *observations) ObserveDelivery(channel userphone.Channel, provider string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, string(channel)+"/"+provider+"/"+FailureClass(err))
}

// Each attempt is told with its channel, provider and failure class, and
// the sender's answer passes through unchanged.
func TestObservedTellsEveryAttempt(t *testing.T) {
	ts := startTwilio(t, map[string][2]int{
		"+15005550001": {400, 21211}, // invalid To: permanent
		"+15005550020": {500, 20500}, // transient
	})
	tw := newTestTwilio(t, TwilioConfig{APIURL: ts.srv.URL}, nil)
	if Observed(tw, "twilio", nil) != userphone.Sender(tw) {
		t.Fatal("without an observer the sender is not returned as it is")
	}
	o := &observations{}
	s := Observed(tw, "twilio", o)
	for to, fails := range map[string]bool{"+4915112345678": false, "+15005550001": true, "+15005550020": true} {
		if err := s.Send(context.Background(), codeSMS(to, "k-"+to)); (err != nil) != fails {
			t.Errorf("send to %s: %v", to, err)
		}
	}
	want := map[string]bool{"sms/twilio/": true, "sms/twilio/permanent": true, "sms/twilio/transient": true}
	if len(o.got) != 3 {
		t.Fatalf("observed %v; want one of each of %v", o.got, want)
	}
	for _, g := range o.got {
		if !want[g] {
			t.Fatalf("observed %v; want one of each of %v", o.got, want)
		}
		delete(want, g)
	}
}
