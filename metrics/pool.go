package metrics

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// WatchPool adds PostgreSQL's pgx pool, read on each scrape: the one pool
// that requests and the job queue share, which the database/sql gauges
// (go_sql_*) see only a part of.
func (m *Metrics) WatchPool(pool *pgxpool.Pool) {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(Namespace+"_db_pool_"+name, help, nil, nil)
	}
	m.reg.MustRegister(&poolCollector{pool: pool,
		total:    desc("connections", "Connections the pool holds: in use, idle or being opened."),
		acquired: desc("acquired_connections", "Connections in use."),
		max:      desc("max_connections", "The pool's size (USERPHONE_DATABASE_MAX_CONNS)."),
		waits:    desc("acquire_waits_total", "Acquires that waited for a free connection: a pool too small for the load."),
		waited:   desc("acquire_wait_seconds_total", "Time spent waiting for a free connection."),
	})
}

type poolCollector struct {
	pool                                *pgxpool.Pool
	total, acquired, max, waits, waited *prometheus.Desc
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.total, c.acquired, c.max, c.waits, c.waited} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(c.acquired, prometheus.GaugeValue, float64(s.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.waits, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.waited, prometheus.CounterValue, s.EmptyAcquireWaitTime().Seconds())
}
