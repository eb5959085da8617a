package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	// The profiling handlers, registered below on the metrics listener's
	// own mux. Importing the package also registers them on
	// http.DefaultServeMux; that is harmless, as nothing here serves
	// DefaultServeMux: the API has its own gin engine.
	"net/http/pprof"
	"time"

	"github.com/pace/userphone/delivery"
	"github.com/pace/userphone/metrics"
)

// observers are what the service's parts report to: the metrics, which
// app.New hands to the flow, the HTTP side, the queue and the pool, and
// the delivery observer for the senders made here. With the metrics off
// (USERPHONE_METRICS_ADDR empty) both are nil, so they pay nothing.
type observers struct {
	metrics  *metrics.Metrics
	delivery delivery.Observer
}

func newObservers(cfg config) observers {
	if cfg.MetricsAddr == "" {
		return observers{}
	}
	m := metrics.New()
	return observers{metrics: m, delivery: m}
}

// metricsServer serves /metrics and pprof on their own listener; a nil one
// is off.
type metricsServer struct {
	srv    *http.Server
	served chan error
}

// serve starts the metrics listener, unless the metrics are off. What the
// metrics watch (the database pool, the job queue) app.New has given them.
func (o observers) serve(cfg config, log *slog.Logger) (*metricsServer, error) {
	if o.metrics == nil {
		log.Info("metrics are off (USERPHONE_METRICS_ADDR is empty)")
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return nil, &settingError{"USERPHONE_METRICS_ADDR", fmt.Sprintf("cannot listen on %s (%v); free the port, choose another address, or set it empty to turn the metrics off", cfg.MetricsAddr, err)}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", o.metrics.Handler(log))
	mux.HandleFunc("/debug/pprof/", pprof.Index) // and the named profiles: heap, goroutine, …
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	m := &metricsServer{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			// A CPU profile or trace streams for ?seconds= (30 by default);
			// pprof refuses durations past the write timeout.
			WriteTimeout: 2 * time.Minute,
			IdleTimeout:  2 * time.Minute,
			ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		served: make(chan error, 1),
	}
	go func() { m.served <- m.srv.Serve(ln) }()
	log.Info("metrics and pprof listening", "addr", ln.Addr().String(), "metrics", "http://"+ln.Addr().String()+"/metrics")
	return m, nil
}

// Close stops the listener at once; a scrape or profile in flight is cut
// off, which Prometheus records as one failed scrape.
func (m *metricsServer) Close() error {
	if m == nil {
		return nil
	}
	err := m.srv.Close()
	if serr := <-m.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
