package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
)

// serve runs srv with the exporter-toolkit flags (TLS, basic auth, systemd
// sockets) until ctx ends (a signal) or the server fails, then shuts it
// down gracefully, giving in-flight requests 5 seconds. It calls stop so
// that the command's other goroutines end too, and returns the exit code.
func serve(ctx context.Context, stop context.CancelFunc, srv *http.Server, flags *web.FlagConfig, logger *slog.Logger) int {
	serveErr := make(chan error, 1)
	go func() { serveErr <- web.ListenAndServe(srv, flags, logger) }()
	code := 0
	select {
	case <-ctx.Done():
		logger.Info("stopping: signal received")
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server failed", "err", err)
			code = 1
		}
	}
	stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("HTTP server did not stop cleanly", "err", err)
	}
	return code
}
