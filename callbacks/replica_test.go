package callbacks_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/callbacks"
	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/internal/syncbuf"
	"github.com/capcheck/capcheck/redisconn"
)

// TestAckWaitsForReplica: on a master with a replica (Sentinel's), a
// callback is acknowledged once the replica has it. While the replica is
// frozen (connected, so the master still counts it, but confirming
// nothing), callbacks get 503, never 200; thawed, the provider's retries
// get 200, and each callback counts once for its job.
func TestAckWaitsForReplica(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	store := capstore.New(s.Client(t), capstore.Options{})
	ctx := context.Background()
	waitStreaming(t, s.Data[0])
	ord, err := store.RegisterJob(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	nums := make([]uint64, n)
	var items []capstore.Awaited
	for i := range n {
		nums[i] = uint64(919876500000 + i)
		items = append(items, capstore.Awaited{Number: nums[i], Index: uint32(i)})
	}
	if err := store.Await(ctx, "job", ord, items, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r := startReceiver(t, store, callbacks.Config{CommitTimeout: time.Second, Metrics: callbacks.NewMetrics(reg)})
	// The gauge says so from the start, before any callback.
	for deadline := time.Now().Add(5 * time.Second); gauge(t, reg, "capcheck_callback_replicated") != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("capcheck_callback_replicated is not 1 after start")
		}
	}
	post := func(num uint64) *httptest.ResponseRecorder { return postTo(r.Handler(), num) }
	replica := capstore.New(s.Data[1].Client(t), capstore.Options{})

	if w := post(nums[0]); w.Code != http.StatusOK {
		t.Fatalf("replica up: %d %s, want 200", w.Code, w.Body)
	}
	if recs, err := replica.Lookup(ctx, nums[:1]); err != nil || recs[0].Capability != capstore.Capable {
		t.Fatalf("acknowledged, but the replica has %+v, %v", recs, err)
	}
	if g := gauge(t, reg, "capcheck_callback_replicated"); g != 1 {
		t.Errorf("capcheck_callback_replicated = %v, want 1", g)
	}

	thaw := s.Data[1].Freeze(t)
	for i := 1; i < n; i++ {
		if w := post(nums[i]); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Errorf("replica frozen, callback %d: %d %q %s, want 503 with Retry-After", i, w.Code, w.Header(), w.Body)
		}
	}
	if got := outcomes(t, reg, "unreplicated"); got != n-1 {
		t.Errorf("unreplicated callbacks counted %v, want %d", got, n-1)
	}
	thaw()
	for i := 1; i < n; i++ {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			w := post(nums[i])
			if w.Code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica thawed, callback %d: %d %s, want 200", i, w.Code, w.Body)
			}
		}
	}
	recs, err := replica.Lookup(ctx, nums)
	if err != nil {
		t.Fatal(err)
	}
	for i, rec := range recs {
		if rec.Capability != capstore.Capable {
			t.Errorf("number %d acknowledged, but the replica has %+v", nums[i], rec)
		}
	}
	jc, err := store.JobCounts(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	if jc.Received != n || jc.Capable != n {
		t.Errorf("job counts %+v, want %d received and capable", jc, n)
	}
}

// TestBatchConnectionKilled: a batch whose connection breaks while it
// waits for the replica (its master lost, here CLIENT KILL) is answered
// 503 at once, not after the commit timeout: the broken connection is not
// ridden through (it stays broken).
func TestBatchConnectionKilled(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	u, err := redisconn.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := u.NewClient(redisconn.Options{})
	t.Cleanup(func() { _ = rdb.Close() })
	store := capstore.New(rdb, capstore.Options{})
	ctx := context.Background()
	waitStreaming(t, s.Data[0])
	reg := prometheus.NewRegistry()
	const commit = 20 * time.Second
	r := startReceiver(t, store, callbacks.Config{CommitTimeout: commit, Metrics: callbacks.NewMetrics(reg)})
	post := func(num uint64) *httptest.ResponseRecorder { return postTo(r.Handler(), num) }
	if w := post(919876510000); w.Code != http.StatusOK {
		t.Fatalf("replica up: %d %s, want 200", w.Code, w.Body)
	}

	thaw := s.Data[1].Freeze(t)
	defer thaw()
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- post(919876510001) }()
	admin := s.Data[0].Client(t)
	var id string
	for deadline := time.Now().Add(5 * time.Second); id == ""; time.Sleep(10 * time.Millisecond) {
		list, err := admin.ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(list) {
			// Blocked in WAIT (flags b): an idle connection whose last
			// command was the first batch's WAIT shows cmd=wait too.
			if strings.Contains(line, " cmd=wait ") && strings.Contains(line, " flags=b ") {
				id, _, _ = strings.Cut(strings.TrimPrefix(line, "id="), " ")
			}
		}
		if id == "" && time.Now().After(deadline) {
			t.Fatalf("no batch waits for the replica:\n%s", list)
		}
	}
	if err := admin.ClientKillByFilter(ctx, "ID", id).Err(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	w := <-done
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("batch connection killed: %d %s, want 503", w.Code, w.Body)
	}
	if d := time.Since(killed); d > commit/4 {
		t.Errorf("batch connection killed: answered after %v, want at once (commit timeout %v)", d, commit)
	}
}

// TestInfoRefusedKeepsWaiting: when the receiver's Redis user loses INFO
// (NOPERM; WAIT still allowed), the master's replicas still count as last
// read: with the replica frozen, callbacks get 503, not 200 on the
// master's word. That the last count holds is logged once while INFO
// keeps failing (it is tried every second), and once it is read again.
func TestInfoRefusedKeepsWaiting(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	ctx := context.Background()
	admin := s.Data[0].Client(t)
	if err := admin.Do(ctx, "ACL", "SETUSER", "receiver", "on", ">pw", "~*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.Data[0].Addr, Username: "receiver", Password: "pw"})
	t.Cleanup(func() { _ = rdb.Close() })
	waitStreaming(t, s.Data[0])
	reg := prometheus.NewRegistry()
	logs := &syncbuf.Buffer{}
	r := startReceiver(t, capstore.New(rdb, capstore.Options{}), callbacks.Config{CommitTimeout: time.Second,
		Metrics: callbacks.NewMetrics(reg), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	post := func(num uint64) *httptest.ResponseRecorder { return postTo(r.Handler(), num) }
	if w := post(919876520000); w.Code != http.StatusOK {
		t.Fatalf("replica up: %d %s, want 200", w.Code, w.Body)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "receiver", "-@dangerous").Err(); err != nil {
		t.Fatal(err)
	}
	thaw := s.Data[1].Freeze(t)
	defer thaw()
	// Past the count's refresh: the receiver reads INFO again, refused.
	for end := time.Now().Add(7 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if w := post(919876520001); w.Code == http.StatusOK {
			t.Fatalf("INFO refused, replica frozen: %d, want 503", w.Code)
		}
	}
	if g := gauge(t, reg, "capcheck_callback_replicated"); g != 1 {
		t.Errorf("capcheck_callback_replicated = %v, want 1", g)
	}
	const holds = "the last count holds"
	if n := strings.Count(logs.String(), holds); n != 1 {
		t.Errorf("%q logged %d times while INFO kept failing, want once:\n%s", holds, n, logs)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "receiver", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	thaw()
	const again = "how many replicas Redis has is read again"
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), again); time.Sleep(100 * time.Millisecond) {
		post(919876520002)
		if time.Now().After(deadline) {
			t.Fatalf("INFO allowed again: %q not logged:\n%s", again, logs)
		}
	}
	if n := strings.Count(logs.String(), holds); n != 1 {
		t.Errorf("%q logged %d times, want once:\n%s", holds, n, logs)
	}
}

// TestInfoRefusedFromStart: a receiver whose Redis user never could read
// INFO answers every callback 503, counted as failed: a dashboard shows
// the refusals.
func TestInfoRefusedFromStart(t *testing.T) {
	t.Parallel()
	srv := redistest.StartPrivate(t)
	ctx := context.Background()
	if err := srv.Client(t).Do(ctx, "ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "+@all", "-@dangerous").Err(); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "noinfo", Password: "pw"})
	t.Cleanup(func() { _ = rdb.Close() })
	reg := prometheus.NewRegistry()
	r := startReceiver(t, capstore.New(rdb, capstore.Options{Prefix: redistest.NewPrefix(t)}),
		callbacks.Config{CommitTimeout: time.Second, Metrics: callbacks.NewMetrics(reg)})
	const n = 3
	for i := range n {
		w := postTo(r.Handler(), 919876530000+uint64(i))
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("INFO refused from the start: %d %s, want 503", w.Code, w.Body)
		}
	}
	if got := outcomes(t, reg, "failed"); got != n {
		t.Errorf("failed callbacks counted %v, want %d", got, n)
	}
}

// TestFirstCountFrozen: a master that stops answering before the first
// count of its replicas (read_timeout=-1: go-redis waits for ever) has
// callbacks answered 503 by the commit timeout, not held for ever.
func TestFirstCountFrozen(t *testing.T) {
	t.Parallel()
	srv := redistest.StartPrivate(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	store := capstore.New(rdb, capstore.Options{Prefix: redistest.NewPrefix(t)})
	const commit = time.Second
	r, err := callbacks.New(store, callbacks.Config{Token: token, CommitTimeout: commit, Committers: 2,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	thaw := srv.Freeze(t)
	r.Start()
	t.Cleanup(func() {
		thaw()
		_ = r.Stop(context.Background())
	})
	h := r.Handler()
	codes := make(chan int, 2)
	start := time.Now()
	for i := range 2 { // both committers: one reads, the other waits for its count
		go func() { codes <- postTo(h, 919876540000+uint64(i)).Code }()
	}
	for range 2 {
		select {
		case code := <-codes:
			if code != http.StatusServiceUnavailable {
				t.Errorf("master frozen before the first count: %d, want 503", code)
			}
		case <-time.After(3 * commit):
			t.Fatalf("master frozen before the first count: no answer after %v (commit timeout %v)", time.Since(start), commit)
		}
	}
}

// startReceiver starts a receiver of cfg (with the test's token and clock)
// on store, stopped at the test's end.
func startReceiver(t *testing.T, store *capstore.Store, cfg callbacks.Config) *callbacks.Receiver {
	t.Helper()
	cfg.Token, cfg.Now = token, func() time.Time { return now }
	r, err := callbacks.New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r
}

func postTo(h http.Handler, num uint64) *httptest.ResponseRecorder {
	body := `{"number":"` + strconv.FormatUint(num, 10) + `","status":"capable"}`
	hr := httptest.NewRequest(http.MethodPost, "/callback", strings.NewReader(body))
	hr.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, hr)
	return w
}

// waitStreaming waits until master's replica confirms its writes: a
// replica whose link is up may not be online for the master yet (its
// first sync ends, then its first acknowledgement starts the stream).
func waitStreaming(t *testing.T, master *redistest.Server) {
	t.Helper()
	ctx := context.Background()
	c := master.Client(t).Conn()
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := c.Set(ctx, redistest.NewPrefix(t)+":streaming", 1, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Wait(ctx, 1, 100*time.Millisecond).Result(); err == nil && n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the replica confirms no write")
		}
	}
}

// outcomes returns capcheck_callbacks_total{outcome}.
func outcomes(t *testing.T, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "capcheck_callbacks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no capcheck_callbacks_total{outcome=%q}", outcome)
	return 0
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
