package server_test

import (
	"net/http"
	"testing"

	"github.com/pace/userphone/store/storetest"
)

func TestStateSurvivesARestart(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			cfg := storetest.Config(t, d)
			before := newHarness(t, options{cfg: cfg})
			tok := before.token("tara", "tara@example.com")
			before.verifyNumber(tok, numberA)
			before.put(tok, numberB)
			link := before.linkToken("tara@example.com")
			before.stop()

			// Same database, same data directory (signing key, outbox): a new process.
			after := newHarness(t, options{cfg: cfg, clk: before.clock})
			if r := after.confirm(link); r.StatusCode() != http.StatusOK {
				t.Fatalf("link from before the restart: %d %s", r.StatusCode(), r.Body)
			}
			if v := after.verify(tok, after.code(numberB)); v.StatusCode() != http.StatusOK {
				t.Fatalf("verify after the restart: %d %s", v.StatusCode(), v.Body)
			}
		})
	}
}
