package capapi_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/capcheck/capcheck/capapi"
)

// connCounter counts the server's new connections.
type connCounter struct {
	mu  sync.Mutex
	new int
}

func (c *connCounter) state(_ net.Conn, s http.ConnState) {
	if s == http.StateNew {
		c.mu.Lock()
		c.new++
		c.mu.Unlock()
	}
}

func (c *connCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.new
}

// The client's own connections carry one request after another, whatever
// the framing of the answers: a length, chunks, or a close (after which a
// new connection is opened); an interim 100 answer is skipped.
func TestDirectConnectionsReused(t *testing.T) {
	t.Parallel()
	var calls counter
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch calls.add() {
		case 2:
			w.WriteHeader(http.StatusContinue)
		case 3:
			w.WriteHeader(http.StatusAccepted)
			w.(http.Flusher).Flush() // no length: chunked
			_, _ = w.Write([]byte(`{"code":"MSG402","message":"ok"}`))
			return
		case 4:
			w.Header().Set("Connection", "close")
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"code":"MSG402","message":"ok"}`))
	}))
	cc := &connCounter{}
	srv.Config.ConnState = cc.state
	srv.Start()
	t.Cleanup(srv.Close)
	c := directClient(t, srv.URL)
	for i := range 6 {
		checkAccepted(t, c, i)
	}
	if got := cc.count(); got != 2 {
		t.Errorf("%d connections opened, want 2 (one closed by the server after call 4)", got)
	}
}

// A connection the server closed while it was idle is not used: the next
// request goes on a new one and succeeds.
func TestDirectIdleConnectionClosedByServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"code":"MSG402","message":"ok"}`))
	}))
	cc := &connCounter{}
	srv.Config.ConnState = cc.state
	srv.Config.IdleTimeout = 100 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	c := directClient(t, srv.URL)
	for i := range 2 {
		if i > 0 {
			time.Sleep(400 * time.Millisecond) // idle past the server's timeout (100 ms)
		}
		checkAccepted(t, c, i)
	}
	if got := cc.count(); got != 2 {
		t.Errorf("%d connections opened, want 2", got)
	}
}

type counter struct {
	mu sync.Mutex
	n  int
}

func (a *counter) add() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	return a.n
}

// Bytes a server sends past its answer are no answer to the next request:
// the connection is not reused, and the next call gets its own answer.
func TestDirectBytesPastTheAnswerNotReused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	const accepted = "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 32\r\n\r\n" + `{"code":"MSG402","message":"ok"}`
	const stray = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
	go func() {
		first := true
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func(conn net.Conn, extra string) {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if _, err := conn.Write([]byte(accepted + extra)); err != nil {
						return
					}
					extra = ""
				}
			}(conn, map[bool]string{true: stray}[first])
			first = false
		}
	}()
	c := directClient(t, "http://"+ln.Addr().String())
	for i := range 3 {
		checkAccepted(t, c, i)
	}
}

// directClient is a client of the API at url on its own connections, one at
// a time.
func directClient(t *testing.T, url string) *capapi.Client {
	t.Helper()
	c, err := capapi.New(capapi.Config{BaseURL: url, SID: testSID, APIKey: testKey, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// checkAccepted makes call i of a test and fails it unless it was accepted.
func checkAccepted(t *testing.T, c *capapi.Client, i int) {
	t.Helper()
	if r := c.Check(context.Background(), []string{"+919800000001"}); r.Class != capapi.Accepted {
		t.Fatalf("call %d: %v %v", i, r.Class, r.Err)
	}
}
