package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pace/userphone"
	"github.com/pace/userphone/delivery"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/jobs"
	"github.com/pace/userphone/metrics"
	"github.com/pace/userphone/metrics/metricstest"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// The names and help texts follow Prometheus' conventions.
func TestTheMetricsPassPromlint(t *testing.T) {
	m := metrics.New()
	m.ObserveRequest("CheckUserPhone", 200, time.Millisecond)
	m.ObserveDelivery(userphone.ChannelSMS, "twilio", nil)
	problems, err := testutil.GatherAndLint(m.Gatherer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, metrics.Namespace+"_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

// Every step and limit the code names has a series from the start, at 0,
// so that rate() sees its first increment; so do a provider's failure
// classes from its first attempt on.
func TestSeriesStartAtZero(t *testing.T) {
	m := metrics.New()
	m.ObserveDelivery(userphone.ChannelEmail, "smtp", nil)
	fams := metricstest.Scrape(t, m.Handler(nil))
	for _, event := range []string{"change_requested", "email_sent", "email_confirmed", "sms_sent", "verified", "wrong_code",
		"expired", "cancelled", "moved_away", "rate_limited", "delivery_failed"} {
		if v, found := fams.Sum("userphone_flow_events_total", "event", event); !found || v != 0 {
			t.Errorf("event %s: %v, found %v; want a series at 0", event, v, found)
		}
	}
	for _, limit := range []string{"cooldown", "user_changes", "number_sms", "sms_budget"} {
		if v, found := fams.Sum("userphone_flow_rate_limited_total", "limit", limit); !found || v != 0 {
			t.Errorf("limit %s: %v, found %v; want a series at 0", limit, v, found)
		}
	}
	for _, class := range []string{"permanent", "timeout", "transient"} {
		if v, found := fams.Sum("userphone_delivery_failures_total", "channel", "email", "provider", "smtp", "class", class); !found || v != 0 {
			t.Errorf("class %s: %v, found %v; want a series at 0", class, v, found)
		}
	}
	if v, _ := fams.Sum("userphone_delivery_attempts_total", "channel", "email", "provider", "smtp"); v != 1 {
		t.Errorf("attempts %v; want 1", v)
	}
	for _, family := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, found := fams.Sum(family); !found {
			t.Errorf("no %s", family)
		}
	}
}

// Names the code adds later are counted under their own name; a refusal
// without a limit's name is "other".
func TestUnknownNamesAreStillCounted(t *testing.T) {
	m := metrics.New()
	m.ObserveStep(userphone.EventKind("number-ported"))
	m.ObserveRefusal("")
	m.ObserveRefusal(flow.LimitSMSBudget)
	m.ObserveDelivery(userphone.ChannelSMS, "webhook", errors.Join(errors.New("410"), userphone.ErrPermanent))
	fams := metricstest.Scrape(t, m.Handler(nil))
	for _, c := range []struct {
		family string
		labels []string
	}{
		{"userphone_flow_events_total", []string{"event", "number_ported"}},
		{"userphone_flow_rate_limited_total", []string{"limit", "other"}},
		{"userphone_flow_rate_limited_total", []string{"limit", "sms_budget"}},
		{"userphone_delivery_failures_total", []string{"provider", "webhook", "class", delivery.FailurePermanent}},
	} {
		if v, _ := fams.Sum(c.family, c.labels...); v != 1 {
			t.Errorf("%s%v = %v; want 1", c.family, c.labels, v)
		}
	}
}

// When the queue's database fails, a scrape still answers with every other
// metric, and the failure is logged.
func TestAFailingQueueCostsOnlyItsOwnMetrics(t *testing.T) {
	st := storetest.New(t, store.SQLite)
	q, err := jobs.New(st, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	m.WatchQueue(q)
	m.WatchDB(st.SQLDB())
	fams := metricstest.Scrape(t, m.Handler(nil))
	if v, found := fams.Sum("userphone_delivery_queue_depth"); !found || v != 0 {
		t.Fatalf("queue depth %v, found %v; want 0", v, found)
	}
	if _, found := fams.Sum("userphone_delivery_oldest_job_age_seconds"); !found {
		t.Fatal("no oldest job age")
	}
	if _, found := fams.Sum("go_sql_max_open_connections", "db_name", "userphone"); !found {
		t.Fatal("no pool statistics")
	}

	st.Close()
	var logs bytes.Buffer
	fams = metricstest.Scrape(t, m.Handler(slog.New(slog.NewTextHandler(&logs, nil))))
	if _, found := fams.Sum("userphone_delivery_queue_depth"); found {
		t.Fatal("a queue depth from a closed database")
	}
	if _, found := fams.Sum("go_goroutines"); !found {
		t.Fatal("the other metrics are gone too")
	}
	if !strings.Contains(logs.String(), "count the waiting messages") {
		t.Fatalf("the failure is not logged: %q", logs.String())
	}
}
