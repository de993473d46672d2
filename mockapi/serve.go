package mockapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/capcheck/capcheck/internal/rawio"
)

// ShutdownTimeout bounds how long Serve waits for requests in flight once
// its context is done; then it closes their connections.
const ShutdownTimeout = 5 * time.Second

// Listen opens a TCP listener on addr ("127.0.0.1:0" picks a free port;
// the listener's Addr tells which).
func (s *Server) Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mockapi: listening on %s: %w", addr, err)
	}
	return ln, nil
}

// Serve answers on ln until ctx is done, then shuts down gracefully and
// returns nil; it returns an error if serving fails. It closes ln, and
// closes s (callbacks not yet delivered are dropped).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	defer s.Close()
	// Requests are counted when the kernel received them, not when their
	// handler runs: see arrival.
	ln = rawio.StampListener(ln)
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext:       withConn,
	}
	addr := ln.Addr().String()
	s.log.Info("mock API listening", "addr", addr, "url", "http://"+addr+s.path, "sid", s.cfg.SID)

	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("mockapi: serving on %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		_ = hs.Close()
		err = fmt.Errorf("mockapi: shutting down: %w", err)
	}
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("mockapi: serving on %s: %w", addr, serr)
	}
	s.log.Info("mock API stopped", "addr", addr)
	return err
}

// ListenAndServe listens on addr and serves until ctx is done (see Serve).
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := s.Listen(addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}
