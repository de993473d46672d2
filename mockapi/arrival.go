package mockapi

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/capcheck/capcheck/internal/rawio"
)

// connKey is the context key of a request's connection.
type connKey struct{}

// withConn is Serve's http.Server.ConnContext.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// arrival returns when r arrived: when the kernel received the last segment
// its connection had read when the handler started (the request's: a client
// sends one request at a time on a connection), or now when that is not
// known (not Linux, the race detector, a connection Serve did not accept).
// The provider's edge counts a request when it arrives; this process may be
// descheduled for a while on a busy host, and counting by the handler's
// time would then put the requests that came during the stall at its end,
// in one sliding second, and refuse some that came within the limit.
func (s *Server) arrival(r *http.Request) time.Time {
	now := s.now()
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	if t := rawio.Arrival(c); !t.IsZero() && t.Before(now) {
		return t
	}
	return now
}
