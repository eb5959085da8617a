// Package metrics owns the service's Prometheus metrics: their names,
// labels and buckets, the registry they live in (the service's own, never
// the global default) and the handler that serves them. It implements the
// observers of the server, flow and delivery packages, which know nothing
// of Prometheus, and on each scrape it reads the job queue's backlog, the
// database pool, the Go runtime and the process.
//
// Every label has a small, fixed set of values: operationIds and routes,
// never raw paths; event, limit, channel, provider and class names from
// the code, never user input.
package metrics

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pace/userphone"
	"github.com/pace/userphone/delivery"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/internal/logs"
	"github.com/pace/userphone/server"
)

// Namespace prefixes the service's own metrics.
const Namespace = "userphone"

// Metrics holds the service's metrics in their own registry.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.HistogramVec
	events   *prometheus.CounterVec
	limited  *prometheus.CounterVec
	attempts *prometheus.CounterVec
	failures *prometheus.CounterVec
	// providers remembers the (channel, provider) pairs seen, whose
	// failure series start at 0.
	providers sync.Map
}

var (
	_ server.Observer   = (*Metrics)(nil)
	_ flow.Observer     = (*Metrics)(nil)
	_ delivery.Observer = (*Metrics)(nil)
)

// eventNames are the names of the flow's steps in userphone_flow_events_total.
var eventNames = map[userphone.EventKind]string{
	userphone.EventRequested:      "change_requested",
	userphone.EventEmailSent:      "email_sent",
	userphone.EventEmailConfirmed: "email_confirmed",
	userphone.EventSMSSent:        "sms_sent",
	userphone.EventSMSWithheld:    "sms_withheld",
	userphone.EventTestCode:       "test_code",
	userphone.EventVerified:       "verified",
	userphone.EventVerifyFailed:   "wrong_code",
	userphone.EventExpired:        "expired",
	userphone.EventCancelled:      "cancelled",
	userphone.EventMovedAway:      "moved_away",
	userphone.EventRateLimited:    "rate_limited",
	userphone.EventDeliveryFailed: "delivery_failed",
}

var failureClasses = []string{delivery.FailurePermanent, delivery.FailureTimeout, delivery.FailureTransient}

// New returns the metrics, with the Go runtime's and the process's.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time to answer an HTTP request, by operation (the spec's operationId, else the route, else \"unmatched\") and status.",
			Buckets: prometheus.DefBuckets,
		}, []string{"operation", "status"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "flow", Name: "events_total",
			Help: "Steps of phone number changes, counted once their transaction has committed.",
		}, []string{"event"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "flow", Name: "rate_limited_total",
			Help: "Requests refused by a flow limit, by limit; sms_budget answers 503 and sends no SMS at all.",
		}, []string{"limit"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "delivery", Name: "attempts_total",
			Help: "Attempts to hand a message to a provider, by channel and provider.",
		}, []string{"channel", "provider"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "delivery", Name: "failures_total",
			Help: "Failed delivery attempts, by channel, provider and class (permanent: the change is cancelled; timeout and transient: retried).",
		}, []string{"channel", "provider", "class"}),
	}
	for _, name := range eventNames {
		m.events.WithLabelValues(name)
	}
	for _, l := range flow.LimitNames {
		m.limited.WithLabelValues(label(l))
	}
	m.reg.MustRegister(m.requests, m.events, m.limited, m.attempts, m.failures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// label turns a name from the code ("sms-budget") into a label value
// ("sms_budget").
func label(name string) string { return strings.ReplaceAll(name, "-", "_") }

// ObserveRequest implements server.Observer.
func (m *Metrics) ObserveRequest(operation string, status int, took time.Duration) {
	m.requests.WithLabelValues(operation, statusLabel(status)).Observe(took.Seconds())
}

// statusLabels spares each request the allocation of its status's text.
var statusLabels = func() (l [600]string) {
	for s := 100; s < len(l); s++ {
		l[s] = strconv.Itoa(s)
	}
	return l
}()

func statusLabel(status int) string {
	if status >= 100 && status < len(statusLabels) {
		return statusLabels[status]
	}
	return strconv.Itoa(status)
}

// ObserveStep implements flow.Observer.
func (m *Metrics) ObserveStep(kind userphone.EventKind) {
	name, ok := eventNames[kind]
	if !ok {
		name = label(string(kind)) // a step added later: still counted
	}
	m.events.WithLabelValues(name).Inc()
}

// ObserveRefusal implements flow.Observer.
func (m *Metrics) ObserveRefusal(limit string) {
	if limit == "" {
		limit = "other"
	}
	m.limited.WithLabelValues(label(limit)).Inc()
}

// ObserveDelivery implements delivery.Observer.
func (m *Metrics) ObserveDelivery(channel userphone.Channel, provider string, err error) {
	if _, seen := m.providers.LoadOrStore(string(channel)+" "+provider, true); !seen {
		// From the first attempt on, every failure series exists, so that
		// rate() sees a provider's first failure.
		for _, class := range failureClasses {
			m.failures.WithLabelValues(string(channel), provider, class)
		}
	}
	m.attempts.WithLabelValues(string(channel), provider).Inc()
	if err != nil {
		m.failures.WithLabelValues(string(channel), provider, delivery.FailureClass(err)).Inc()
	}
}

// WatchDB adds the database pool's statistics (go_sql_*, with db_name
// "userphone"), read on each scrape.
func (m *Metrics) WatchDB(db *sql.DB) {
	m.reg.MustRegister(collectors.NewDBStatsCollector(db, Namespace))
}

// Queue is what the metrics read of the job queue; jobs.Queue has it.
type Queue interface {
	// Backlog tells how many messages wait, and since when the oldest due
	// one has waited (the zero time when none is due).
	Backlog(ctx context.Context) (waiting int, oldestDue time.Time, err error)
}

// queueTimeout bounds the queue's queries on a scrape: a slow database
// costs the scrape these two metrics, not the whole answer.
const queueTimeout = 2 * time.Second

// WatchQueue adds the delivery queue's depth and age, read on each scrape.
func (m *Metrics) WatchQueue(q Queue) {
	m.reg.MustRegister(&queueCollector{
		q: q,
		depth: prometheus.NewDesc(Namespace+"_delivery_queue_depth",
			"Messages waiting to be sent: due, waiting for a retry, or scheduled. Every replica reports the whole cluster's queue.", nil, nil),
		age: prometheus.NewDesc(Namespace+"_delivery_oldest_job_age_seconds",
			"How long the oldest due message has waited for a worker; 0 when none is due.", nil, nil),
	})
}

type queueCollector struct {
	q          Queue
	depth, age *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.age
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueTimeout)
	defer cancel()
	n, oldest, err := c.q.Backlog(ctx)
	if err != nil {
		// The handler serves the other metrics and logs this.
		ch <- prometheus.NewInvalidMetric(c.depth, err)
		return
	}
	var age time.Duration
	if !oldest.IsZero() {
		age = max(time.Since(oldest), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age.Seconds())
}

// Handler serves the metrics in Prometheus' formats. A collector that
// fails (the queue's database) loses its own metrics only, is logged, and
// counts in promhttp_metric_handler_errors_total.
func (m *Metrics) Handler(log *slog.Logger) http.Handler {
	log = logs.OrDiscard(log)
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
	})
}

// Gatherer returns the registry, for tests that read the metrics directly.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }
