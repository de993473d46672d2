package capapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capcheck/capcheck/internal/rawio"
)

// SendGate decides, right before a request is written to the connection,
// whether it may go: Ready returns nil when it may (after blocking as long as
// it needs), or an error, and the request is then not sent.
// *ratelimit.Permit satisfies it: a request whose rate-limit slot passed
// too long ago takes a new slot instead of crowding the ones after it.
type SendGate interface {
	Ready(ctx context.Context) error
}

// ErrNotSent is the cause (errors.Is) of a Transient Result whose request
// was never written because its SendGate said no: it cost the API nothing.
var ErrNotSent = errors.New("request not sent")

type gateKey struct{}

// WithSendGate returns a context under which [Client.Check] calls g.Ready
// right before writing the request to the connection (after the connection,
// with its DNS, TCP and TLS set-up, is ready): a stall before that point
// (a slow handshake, a GC pause, a starved core) is seen by the gate. With a
// Config.HTTPClient of the caller's, or through a proxy, Ready is called
// right before the request is handed to the client instead.
func WithSendGate(ctx context.Context, g SendGate) context.Context {
	return context.WithValue(ctx, gateKey{}, g)
}

func gateFrom(ctx context.Context) SendGate {
	g, _ := ctx.Value(gateKey{}).(SendGate)
	return g
}

// warmMaxAge is how long a connection opened by Warm waits unused before it
// is thrown away: a server may close a connection that sent nothing for a
// while, and a dead one would fail the request that takes it.
const warmMaxAge = 10 * time.Second

// handshakeTimeout bounds a TLS handshake, as http.DefaultTransport's does.
const handshakeTimeout = 10 * time.Second

// dialer opens the connections of a client's own pool. Each is a gatedConn,
// so that a request's gate runs when its first byte is written; Warm keeps a
// stash of connections opened (DNS, TCP, TLS) ahead of the first request.
type dialer struct {
	net *net.Dialer
	tls *tls.Config // nil for http://

	warmMu sync.Mutex // one Warm at a time
	mu     sync.Mutex
	stash  []stashed
	open   atomic.Int64 // connections open: stashed or handed to the pool
}

type stashed struct {
	c  *gatedConn
	at time.Time
}

// install makes tr open its connections through d.
func (d *dialer) install(tr *http.Transport) {
	if d.tls != nil {
		tr.DialTLSContext = d.dial
	} else {
		tr.DialContext = d.dial
	}
	// One request at a time per connection, and the TLS handshake done
	// here: HTTP/1.1 only.
	tr.ForceAttemptHTTP2 = false
}

func (d *dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if c := d.take(addr); c != nil {
		return c, nil
	}
	return d.openConn(ctx, network, addr)
}

// take returns a stashed connection to addr, or nil; it closes stale ones
// and those the server has closed meanwhile (one that never carried a
// request may be closed within seconds: a server's header timeout), which
// would fail the first request written on them.
func (d *dialer) take(addr string) *gatedConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.stash) > 0 {
		s := d.stash[len(d.stash)-1]
		d.stash = d.stash[:len(d.stash)-1]
		if s.c.addr == addr && time.Since(s.at) < warmMaxAge && alive(s.c.sock) {
			return s.c
		}
		s.c.Close()
	}
	return nil
}

func (d *dialer) openConn(ctx context.Context, network, addr string) (*gatedConn, error) {
	raw, err := d.net.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	raw = rawio.Wrap(raw)
	conn := raw
	if d.tls != nil {
		cfg := d.tls.Clone()
		if cfg.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				raw.Close()
				return nil, err
			}
			cfg.ServerName = host
		}
		tc := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, err
		}
		conn = tc
	}
	d.open.Add(1)
	return &gatedConn{Conn: conn, d: d, addr: addr, sock: raw}, nil
}

// warm opens connections to addr until n are open, in parallel, and stashes
// them for the pool.
func (d *dialer) warm(ctx context.Context, addr string, n int) error {
	d.warmMu.Lock()
	defer d.warmMu.Unlock()
	d.dropStale()
	need := n - int(d.open.Load())
	if need <= 0 {
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, need)
	for i := range need {
		wg.Go(func() {
			c, err := d.openConn(ctx, "tcp", addr)
			if err != nil {
				errs[i] = err
				return
			}
			d.mu.Lock()
			d.stash = append(d.stash, stashed{c: c, at: time.Now()})
			d.mu.Unlock()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (d *dialer) dropStale() {
	d.mu.Lock()
	defer d.mu.Unlock()
	fresh := d.stash[:0]
	for _, s := range d.stash {
		if time.Since(s.at) < warmMaxAge {
			fresh = append(fresh, s)
		} else {
			s.c.Close()
		}
	}
	clear(d.stash[len(fresh):])
	d.stash = fresh
}

// closeStash closes the stashed connections.
func (d *dialer) closeStash() {
	d.mu.Lock()
	stash := d.stash
	d.stash = nil
	d.mu.Unlock()
	for _, s := range stash {
		s.c.Close()
	}
}

// gatedConn runs the gate armed for the request it carries before the
// request's first byte is written.
type gatedConn struct {
	net.Conn
	d    *dialer
	addr string
	sock net.Conn // the socket, under TLS if any

	mu   sync.Mutex
	gate SendGate
	ctx  context.Context

	closed atomic.Bool
}

// arm makes the next Write wait on g first.
func (c *gatedConn) arm(ctx context.Context, g SendGate) {
	c.mu.Lock()
	c.gate, c.ctx = g, ctx
	c.mu.Unlock()
}

func (c *gatedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	g, ctx := c.gate, c.ctx
	c.gate, c.ctx = nil, nil
	c.mu.Unlock()
	if g != nil {
		if err := g.Ready(ctx); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrNotSent, err)
		}
	}
	return c.Conn.Write(p)
}

func (c *gatedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.d.open.Add(-1)
	}
	return c.Conn.Close()
}

// armOnConn returns ctx with a trace that arms the connection a request gets
// with g. A connection not opened by a dialer (none should be) runs the gate
// there, and a refusal cancels the request (through cancel) as it starts.
func armOnConn(ctx context.Context, g SendGate, cancel context.CancelCauseFunc) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if gc, ok := info.Conn.(*gatedConn); ok {
				gc.arm(ctx, g)
			} else if err := g.Ready(ctx); err != nil {
				cancel(fmt.Errorf("%w: %w", ErrNotSent, err))
			}
		},
	})
}
