// Package logs owns the one convention for loggers handed to the
// service's packages: a nil logger discards, so a test or tool that does
// not care passes nil and hears nothing.
package logs

import "log/slog"

// OrDiscard returns log, or a logger that discards when log is nil.
func OrDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
