package mockapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capcheck/capcheck/internal/rawio"
)

// serveStamped serves a Server for cfg with Serve, on a real clock whose
// reads wait while hold is held. It skips the test where Serve gets no
// arrival stamps (not Linux, the race detector).
func serveStamped(t *testing.T, cfg Config) (s *Server, url string, hold *sync.RWMutex) {
	t.Helper()
	cfg.SID, cfg.APIKey = testSID, testKey
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if rawio.StampListener(ln) == ln {
		ln.Close()
		t.Skip("no arrival stamps here")
	}
	stampsOn(t)
	hold = new(sync.RWMutex)
	// A handler's first act is to read the clock: holding it holds the
	// handlers, as a stall of the process would.
	s.now = func() time.Time {
		hold.RLock()
		defer hold.RUnlock()
		return time.Now()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, "http://" + ln.Addr().String() + s.Path(), hold
}

// stampsOn waits until the kernel stamps what arrives: it turns its stamps on
// a moment after a socket first asks for them.
func stampsOn(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := rawio.StampListener(ln)
	defer sl.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv, err := sl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for range 500 {
		if _, err := c.Write([]byte{0}); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		if !rawio.Arrival(srv).IsZero() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no arrival stamps after 5 s")
}

// postWith sends one request with client and returns its status (0 for an
// error) and whether it went on a connection used before.
func postWith(t *testing.T, client *http.Client, url string) (status int, reused bool, err error) {
	t.Helper()
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
		http.MethodPost, url, strings.NewReader(`{"number":["919800000001"]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("api-key", testKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return 0, reused, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, reused, nil
}

// TestStallCountsByArrival stalls the server's handlers for more than a
// second while requests come within the limit: two, then two more 1.1 s
// later. Counted when handled, all four would be in one second and two
// refused; counted when they arrived, none is. The answers come Latency
// after the arrival, not after the stall.
func TestStallCountsByArrival(t *testing.T) {
	t.Parallel()
	const latency = 500 * time.Millisecond
	s, url, hold := serveStamped(t, Config{Rate: 2, Latency: latency})
	hold.Lock()
	start := time.Now()
	statuses := make(chan int, 4)
	var slowest time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 4 {
		if i == 2 {
			time.Sleep(1100 * time.Millisecond)
		}
		wg.Go(func() {
			sent := time.Now()
			status, _, err := postWith(t, &http.Client{Transport: &http.Transport{}}, url)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			slowest = max(slowest, time.Since(sent))
			mu.Unlock()
			statuses <- status
		})
	}
	time.Sleep(200 * time.Millisecond) // the last two arrive
	stall := time.Since(start)
	hold.Unlock()
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != 202 {
			t.Errorf("a request that arrived within the limit was answered %d", st)
		}
	}
	st := s.Stats()
	if st.RateLimited != 0 || st.MaxWindow != 2 {
		t.Errorf("RateLimited %d, MaxWindow %d; want 0 and 2", st.RateLimited, st.MaxWindow)
	}
	if first := time.UnixMicro(st.FirstArrivalUS); first.Before(start.Round(0)) || first.After(start.Add(500*time.Millisecond)) {
		t.Errorf("first arrival at %v, want soon after the start at %v", first, start)
	}
	// The first requests were held for the whole stall; an answer after
	// the stall plus the latency would mean the latency counts from the
	// handler's start.
	if slowest >= stall+latency {
		t.Errorf("the slowest answer took %v, want less than the stall %v plus the latency %v", slowest, stall, latency)
	}
}

// TestKeepAliveStampsEachRequest sends two requests on one connection 1.1 s
// apart at a limit of 1 per second: each is counted when it arrived, not
// when the connection's first one did.
func TestKeepAliveStampsEachRequest(t *testing.T) {
	t.Parallel()
	s, url, _ := serveStamped(t, Config{Rate: 1})
	client := &http.Client{Transport: &http.Transport{}}
	for i := range 2 {
		if i > 0 {
			time.Sleep(1100 * time.Millisecond)
		}
		status, reused, err := postWith(t, client, url)
		if err != nil || status != 202 || reused != (i > 0) {
			t.Errorf("request %d: %d, reused %t, %v; want 202 on the first connection", i, status, reused, err)
		}
	}
	if st := s.Stats(); st.RateLimited != 0 || st.MaxWindow != 1 {
		t.Errorf("RateLimited %d, MaxWindow %d; want 0 and 1", st.RateLimited, st.MaxWindow)
	}
}

// TestServeDropResets checks that a dropped connection of Serve's is reset,
// as a crashed proxy's is, through the stamped socket.
func TestServeDropResets(t *testing.T) {
	t.Parallel()
	_, url, _ := serveStamped(t, Config{ResetRate: 1})
	_, _, err := postWith(t, &http.Client{Transport: &http.Transport{}}, url)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("error %v, want a connection reset", err)
	}
}
