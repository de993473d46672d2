package capapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// events records what the client, the gate and the server did, in order.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	e.list = append(e.list, s)
	e.mu.Unlock()
}

func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

func (e *events) count(s string) int {
	n := 0
	for _, x := range e.get() {
		if x == s {
			n++
		}
	}
	return n
}

// gateFunc is a SendGate.
type gateFunc func(context.Context) error

func (f gateFunc) Ready(ctx context.Context) error { return f(ctx) }

// slowTLS starts a TLS API stand-in whose handshakes are slow, and a client
// of maxConns connections that trusts it.
func slowTLS(t *testing.T, ev *events, maxConns int) *Client {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev.add("request")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"code":"MSG202","message":"accepted"}`))
	}))
	srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		time.Sleep(50 * time.Millisecond) // a slow handshake; no timing is asserted
		ev.add("handshake")
		return nil, nil
	}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c, err := New(Config{BaseURL: srv.URL, SID: "sid", APIKey: "key-123456", MaxConns: maxConns,
		tlsConfig: &tls.Config{RootCAs: roots}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// The gate runs once the connection is set up (TLS done), right before the
// request is written, and never before: a slow handshake is not spent
// inside a rate-limit slot.
func TestGateAfterHandshake(t *testing.T) {
	t.Parallel()
	ev := &events{}
	c := slowTLS(t, ev, 1)
	gate := gateFunc(func(context.Context) error { ev.add("ready"); return nil })
	res := c.Check(WithSendGate(context.Background(), gate), []string{"+919800000001"})
	if res.Class != Accepted {
		t.Fatalf("Check = %v, want accepted", res)
	}
	if got, want := ev.get(), []string{"handshake", "ready", "request"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// Warm opens the whole pool (DNS, TCP, TLS) before any request; the
// requests then use those connections and open none.
func TestWarm(t *testing.T) {
	t.Parallel()
	const conns = 4
	ev := &events{}
	c := slowTLS(t, ev, conns)
	ctx := context.Background()
	if err := c.Warm(ctx); err != nil {
		t.Fatal(err)
	}
	if n := ev.count("handshake"); n != conns {
		t.Fatalf("Warm made %d handshakes, want %d", n, conns)
	}
	if err := c.Warm(ctx); err != nil { // the pool is full: nothing to do
		t.Fatal(err)
	}
	gate := gateFunc(func(context.Context) error { ev.add("ready"); return nil })
	var wg sync.WaitGroup
	for range 3 * conns {
		wg.Go(func() {
			if res := c.Check(WithSendGate(ctx, gate), []string{"+919800000001"}); res.Class != Accepted {
				t.Errorf("Check = %v, want accepted", res)
			}
		})
	}
	wg.Wait()
	got := ev.get()
	if n := ev.count("handshake"); n != conns {
		t.Errorf("%d handshakes in all, want the %d of Warm: %v", n, conns, got)
	}
	if n := ev.count("ready"); n != 3*conns {
		t.Errorf("gate ran %d times, want %d", n, 3*conns)
	}
	if i := slices.Index(got, "ready"); i < conns {
		t.Errorf("a gate ran before Warm's handshakes were done: %v", got)
	}
}

// A gate that says no: nothing is written, and the result says so.
func TestGateRefuses(t *testing.T) {
	t.Parallel()
	ev := &events{}
	c := slowTLS(t, ev, 1)
	ctx := context.Background()
	if err := c.Warm(ctx); err != nil {
		t.Fatal(err)
	}
	no := errors.New("slot lost")
	res := c.Check(WithSendGate(ctx, gateFunc(func(context.Context) error { return no })), []string{"+919800000001"})
	if res.Class != Transient || !errors.Is(res.Err, ErrNotSent) || !errors.Is(res.Err, no) {
		t.Errorf("Check = %v, want transient, not sent, because %v", res, no)
	}
	if n := ev.count("request"); n != 0 {
		t.Errorf("the server saw %d requests, want 0", n)
	}
}

// With a caller's HTTP client the gate runs before the request is handed to it.
func TestGateCallerClient(t *testing.T) {
	t.Parallel()
	ev := &events{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev.add("request")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"code":"MSG202","message":"accepted"}`))
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, SID: "sid", APIKey: "key-123456", HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Warm(context.Background()); err != nil {
		t.Errorf("Warm with a caller's client = %v, want nil (nothing to do)", err)
	}
	gate := gateFunc(func(context.Context) error { ev.add("ready"); return nil })
	if res := c.Check(WithSendGate(context.Background(), gate), []string{"+919800000001"}); res.Class != Accepted {
		t.Fatalf("Check = %v", res)
	}
	if got, want := ev.get(), []string{"ready", "request"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// A stashed connection to another address is never handed out.
func TestStashAddress(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	d := &dialer{}
	d.stash = []stashed{{c: &gatedConn{Conn: a, d: d, addr: "x:1"}, at: time.Now()}}
	d.open.Add(1)
	if c := d.take("y:1"); c != nil {
		t.Error("take handed out a connection to another address")
	}
	if n := d.open.Load(); n != 0 {
		t.Errorf("%d connections counted open after the mismatch was closed, want 0", n)
	}
}

// A connection opened by Warm that the server closed before it carried a
// request (its header timeout) is not handed to the first request: that
// request goes on a new one and is accepted.
func TestWarmConnClosedByServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"code":"MSG202","message":"accepted"}`))
	}))
	srv.Config.ReadHeaderTimeout = 100 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, SID: "sid", APIKey: "key-123456", MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	ctx := context.Background()
	if err := c.Warm(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the server closes them meanwhile
	if res := c.Check(ctx, []string{"+919800000001"}); res.Class != Accepted {
		t.Fatalf("Check = %v %v, want accepted", res.Class, res.Err)
	}
}
