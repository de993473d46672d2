package callbacks

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Timeouts of the HTTP server: a slow or stalled client is cut off rather
// than holding a connection (and memory) for ever.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 15 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 90 * time.Second
)

// TLS names the certificate and key files of a receiver serving HTTPS; the
// zero value serves plain HTTP (TLS terminated in front of it).
type TLS struct {
	CertFile, KeyFile string
}

// Serve starts the committers, serves callbacks on ln until ctx is done,
// then shuts down in order: stop accepting, let requests in flight finish
// (each answered once its callbacks are written), write what is queued,
// stop the committers. grace bounds the shutdown.
func (r *Receiver) Serve(ctx context.Context, ln net.Listener, tls TLS, grace time.Duration) error {
	srv := &http.Server{
		Handler:           r.Handler(),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
	r.Start()
	errc := make(chan error, 1)
	go func() {
		var err error
		if tls.CertFile != "" {
			err = srv.ServeTLS(ln, tls.CertFile, tls.KeyFile)
		} else {
			err = srv.Serve(ln)
		}
		errc <- err
	}()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	err = errors.Join(err, r.Stop(sctx))
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return errors.Join(serveErr, err)
	}
	return err
}
