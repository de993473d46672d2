package redisconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/internal/syncbuf"
)

func TestMain(m *testing.M) { redistest.Main(m) }

func newLogger() (*slog.Logger, *syncbuf.Buffer) {
	buf := &syncbuf.Buffer{}
	return slog.New(slog.NewTextHandler(buf, nil)), buf
}

func mustParse(t *testing.T, s string) *URL {
	t.Helper()
	u, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return u
}

func newClient(t *testing.T, u *URL, o Options) redis.UniversalClient {
	t.Helper()
	rdb := u.NewClient(o)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestTransient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{redis.Nil, false},
		{context.Canceled, false},
		{context.DeadlineExceeded, false},
		{redis.ErrClosed, false},
		{errors.New("ERR unknown command"), false},
		{errors.New("NOSCRIPT No matching script"), false},
		{errors.New("CROSSSLOT Keys in request don't hash to the same slot"), false},
		{io.EOF, true},
		{fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{syscall.ECONNRESET, true},
		{errors.New("READONLY You can't write against a read only replica."), true},
		{errors.New("LOADING Redis is loading the dataset in memory"), true},
		{errors.New("CLUSTERDOWN The cluster is down"), true},
		{errors.New("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{errors.New("MASTERDOWN Link with MASTER is down"), true},
		{errors.New("redis: all sentinels specified in configuration are unreachable"), true},
	}
	for _, tt := range tests {
		if got := Transient(tt.err); got != tt.want {
			t.Errorf("Transient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	prevMax := time.Duration(0)
	for attempt := range 12 {
		d := Backoff(attempt)
		full := min(50*time.Millisecond<<attempt, 2*time.Second)
		if d < full/2 || d > full {
			t.Errorf("Backoff(%d) = %v, want within [%v, %v]", attempt, d, full/2, full)
		}
		if full < prevMax {
			t.Errorf("the ceiling shrinks at attempt %d", attempt)
		}
		prevMax = full
	}
}

// A script and asynq work through the client and AsynqOpt of each topology.
func TestTopologies(t *testing.T) {
	t.Parallel()
	urls := map[string]func(t *testing.T) string{
		"single":   func(t *testing.T) string { return redistest.Shared(t).URL },
		"sentinel": func(t *testing.T) string { return redistest.StartSentinel(t).URL },
		"cluster":  func(t *testing.T) string { return redistest.StartCluster(t).URL },
	}
	for name, start := range urls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			u := mustParse(t, start(t))
			rdb := newClient(t, u, Options{})
			if err := u.Wait(ctx, rdb, WaitOptions{}); err != nil {
				t.Fatalf("Wait: %v", err)
			}
			key := "{" + redistest.NewPrefix(t) + "}:n"
			incr := redis.NewScript(`return redis.call("INCRBY", KEYS[1], ARGV[1])`)
			if n, err := incr.Run(ctx, rdb, []string{key}, 2).Int(); err != nil || n != 2 {
				t.Fatalf("script = %d, %v; want 2", n, err)
			}
			// asynq on the shared client, and on a client of its own.
			queue := redistest.NewPrefix(t)
			for i, c := range []*asynq.Client{asynq.NewClientFromRedisClient(rdb), asynq.NewClient(u.AsynqOpt())} {
				if _, err := c.EnqueueContext(ctx, asynq.NewTask("t", nil), asynq.Queue(queue)); err != nil {
					t.Fatalf("client %d: Enqueue: %v", i, err)
				}
			}
			insp := asynq.NewInspector(u.AsynqOpt())
			defer insp.Close()
			qi, err := insp.GetQueueInfo(queue)
			if err != nil || qi.Pending != 2 {
				t.Fatalf("queue info = %+v, %v; want 2 pending", qi, err)
			}
		})
	}
}

// hammer runs f in a loop on two goroutines until stop is closed, and
// returns the errors it got and how many calls succeeded. A call that takes
// longer than callTimeout fails: a failover in a test takes seconds.
func hammer(f func(ctx context.Context, i int) error, stop <-chan struct{}) (wait func() ([]error, int64)) {
	const callTimeout = 20 * time.Second
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	var ok atomic.Int64
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i += 2 {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
				start := time.Now()
				err := f(ctx, i)
				cancel()
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("call %d after %v: %w", i, time.Since(start), err))
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
	}
	return func() ([]error, int64) {
		wg.Wait()
		return errs, ok.Load()
	}
}

// Commands in flight while the Sentinel master dies end without an error, on
// the promoted replica, and the outage is logged.
func TestRideThroughSentinelFailover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := redistest.StartSentinel(t)
	log, logs := newLogger()
	u := mustParse(t, s.URL)
	rdb := newClient(t, u, Options{Logger: log})
	key := redistest.NewPrefix(t)
	stop := make(chan struct{})
	wait := hammer(func(ctx context.Context, i int) error { return rdb.HSet(ctx, key, fmt.Sprint(i), i).Err() }, stop)
	time.Sleep(100 * time.Millisecond) // some writes before the failover
	s.KillMaster(t)
	if err := rdb.Set(ctx, key+":after", 1, 0).Err(); err != nil {
		t.Fatalf("SET after the failover: %v", err)
	}
	close(stop)
	errs, n := wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d commands failed during the failover, first: %v", len(errs), int64(len(errs))+n, errs[0])
	}
	for _, want := range []string{"Redis does not answer; retrying", "Redis answers again"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// Commands in flight while a cluster master dies end without an error.
func TestRideThroughClusterFailover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := redistest.StartCluster(t)
	u := mustParse(t, c.URL)
	rdb := newClient(t, u, Options{})
	prefix := redistest.NewPrefix(t)
	stop := make(chan struct{})
	// Keys of every slot range, so that some live on the master killed.
	wait := hammer(func(ctx context.Context, i int) error {
		return rdb.Set(ctx, fmt.Sprint(prefix, ":", i%64), i, 0).Err()
	}, stop)
	time.Sleep(100 * time.Millisecond)
	c.KillMaster(t, c.Masters(t)[0])
	close(stop)
	errs, n := wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d commands failed during the failover, first: %v", len(errs), int64(len(errs))+n, errs[0])
	}
	if err := u.Wait(ctx, rdb, WaitOptions{Max: 10 * time.Second}); err != nil {
		t.Errorf("Wait after the failover: %v", err)
	}
}

// A command gives up once RideThrough has passed, with Redis's error; a
// transaction is not retried.
func TestRideThroughGivesUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.StartPrivate(t)
	u := mustParse(t, srv.URL)
	rdb := newClient(t, u, Options{RideThrough: 300 * time.Millisecond})
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	err := rdb.Set(ctx, "k", 1, 0).Err()
	if !Transient(err) {
		t.Fatalf("SET on a stopped server = %v, want a transient error", err)
	}
	_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "k", 1, 0)
		return nil
	})
	if err == nil {
		t.Fatal("a transaction on a stopped server succeeded")
	}
}

// gate is a TCP proxy to a Redis that drops every connection until opened,
// as a Redis that is not up yet.
type gate struct {
	ln     net.Listener
	target string
	open   atomic.Bool
	// dropped counts the connections dropped; drops is signalled after each.
	dropped atomic.Int64
	drops   chan struct{}
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target, drops: make(chan struct{}, 1)}
	t.Cleanup(func() { _ = ln.Close() })
	go g.serve()
	return g
}

func (g *gate) serve() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		if !g.open.Load() {
			_ = c.Close()
			g.dropped.Add(1)
			select {
			case g.drops <- struct{}{}:
			default:
			}
			continue
		}
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp", g.target)
			if err != nil {
				return
			}
			defer up.Close()
			go func() { _, _ = io.Copy(up, c) }()
			_, _ = io.Copy(c, up)
		}()
	}
}

// A connection that breaks while it is set up (a Sentinel closes its
// clients when it promotes a replica) is given up at once: its HELLO is sent
// once, and the command rides through on a new connection. Retried on the
// broken connection, HELLO held the command for the whole ride-through
// budget (or its deadline).
func TestRideThroughBrokenHandshake(t *testing.T) {
	t.Parallel()
	g := newGate(t, redistest.Shared(t).Addr)
	rdb := newClient(t, mustParse(t, "redis://"+g.ln.Addr().String()+"/0"), Options{RideThrough: 10 * time.Second})
	var hellos failedHellos
	rdb.AddHook(&hellos) // after the ride-through hook: it sees every attempt
	done := make(chan error, 1)
	go func() { done <- rdb.Set(context.Background(), redistest.NewPrefix(t), 1, 0).Err() }()
	for g.dropped.Load() < 2 {
		<-g.drops
	}
	g.open.Store(true)
	if err := <-done; err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, want := hellos.n.Load(), g.dropped.Load(); got != want {
		t.Errorf("%d HELLOs failed on %d connections dropped; want one on each", got, want)
	}
}

// failedHellos is a hook that counts the HELLO commands that failed.
type failedHellos struct{ n atomic.Int64 }

func (*failedHellos) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *failedHellos) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if cmd.Name() == "hello" && err != nil {
			h.n.Add(1)
		}
		return err
	}
}

func (*failedHellos) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// Wait waits for a Redis that is not up yet, says what it waits for, and
// returns once it answers.
func TestWaitForRedisNotUpYet(t *testing.T) {
	t.Parallel()
	g := newGate(t, redistest.Shared(t).Addr)
	u := mustParse(t, "redis://"+g.ln.Addr().String()+"/0")
	log, logs := newLogger()
	rdb := newClient(t, u, Options{})
	attempts := make(chan int, 100)
	o := WaitOptions{Logger: log, Max: time.Minute, backoff: func(attempt int) time.Duration {
		attempts <- attempt
		return time.Millisecond
	}}
	done := make(chan error, 1)
	go func() { done <- u.Wait(context.Background(), rdb, o) }()
	for a := range attempts {
		if a == 3 {
			break // Wait has failed a few times
		}
	}
	g.open.Store(true)
	if err := <-done; err != nil {
		t.Fatalf("Wait: %v", err)
	}
	for _, want := range []string{"waiting for Redis", "redis=redis://" + g.ln.Addr().String(), "Redis answers"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestWaitGivesUp(t *testing.T) {
	t.Parallel()
	g := newGate(t, redistest.Shared(t).Addr) // never opened
	u := mustParse(t, "redis://:s3cret@"+g.ln.Addr().String()+"/0")
	rdb := newClient(t, u, Options{})
	err := u.Wait(context.Background(), rdb, WaitOptions{Max: 50 * time.Millisecond})
	if err == nil {
		t.Fatal("Wait on a Redis that never answers returned nil")
	}
	if msg := err.Error(); !strings.Contains(msg, "did not answer within 50ms") || !strings.Contains(msg, g.ln.Addr().String()) ||
		strings.Contains(msg, "s3cret") {
		t.Errorf("error %q: want one naming the address and the wait, without the password", msg)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := u.Wait(ctx, rdb, WaitOptions{Max: -1}); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a canceled context = %v, want context.Canceled", err)
	}
}

// A sentinel set-up with no sentinel up yet: Wait names the master and
// the sentinels it asks.
func TestWaitNamesSentinels(t *testing.T) {
	t.Parallel()
	g := newGate(t, redistest.Shared(t).Addr)
	u := mustParse(t, "redis-sentinel://"+g.ln.Addr().String()+"?master=mymaster")
	rdb := newClient(t, u, Options{})
	err := u.Wait(context.Background(), rdb, WaitOptions{Max: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), `master "mymaster" through sentinels `+g.ln.Addr().String()) {
		t.Errorf("Wait = %v, want an error naming the master and the sentinels", err)
	}
}

// A pooled connection that Redis closed is found by go-redis's health check
// before a command is written to it, through the raw-I/O connection too: the
// command goes on a new connection, with no retry needed.
func TestPooledConnClosedByRedis(t *testing.T) {
	ctx := context.Background()
	rdb := newClient(t, mustParse(t, redistest.Shared(t).URL+"?max_retries=-1&pool_size=1"), Options{RideThrough: -1})
	id, err := rdb.ClientID(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	admin := newClient(t, mustParse(t, redistest.Shared(t).URL), Options{RideThrough: -1})
	if err := admin.ClientKillByFilter(ctx, "ID", fmt.Sprint(id)).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Ping after Redis closed the pooled connection: %v", err)
	}
	if id2, err := rdb.ClientID(ctx).Result(); err != nil || id2 == id {
		t.Fatalf("ClientID = %d, %v; want a new connection's", id2, err)
	}
}

// A dedicated connection (redis.Conn) that Redis closed stays broken: its
// commands fail at once, not retried on it for the ride-through budget,
// and the broken connection is not taken for Redis answering again. With
// go-redis's retries off the ride-through sees the EOF first (a frozen
// master's i/o timeout, likewise), then the broken connection.
func TestDedicatedConnClosedByRedis(t *testing.T) {
	t.Parallel()
	for _, query := range []string{"", "?max_retries=-1"} {
		t.Run(query, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			log, logs := newLogger()
			rdb := newClient(t, mustParse(t, redistest.Shared(t).URL+query), Options{Logger: log, RideThrough: 20 * time.Second})
			cn := rdb.(*redis.Client).Conn()
			defer cn.Close()
			id, err := cn.ClientID(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			admin := newClient(t, mustParse(t, redistest.Shared(t).URL), Options{RideThrough: -1})
			if err := admin.ClientKillByFilter(ctx, "ID", fmt.Sprint(id)).Err(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			for range 2 { // the first sees the close, the second the broken Conn
				if err := cn.Ping(ctx).Err(); err == nil {
					t.Fatal("Ping on a killed connection succeeded")
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("a killed dedicated connection failed after %v, want at once", d)
			}
			if strings.Contains(logs.String(), "Redis answers again") {
				t.Errorf("a broken dedicated connection logged that Redis answers again:\n%s", logs)
			}
		})
	}
}

// An answer that says the settings are wrong is waited out for the grace
// only: Wait then returns an ErrConfig that says what to fix, without the
// password. (It retried them for --redis-wait, 5 minutes by default.)
func TestWaitMisconfigured(t *testing.T) {
	t.Parallel()
	srv := redistest.Shared(t)
	ctx := context.Background()
	admin := srv.Client(t)
	user := "u" + redistest.NewPrefix(t)
	for _, acl := range [][]any{
		{"ACL", "SETUSER", user, "on", ">s3cret", "~*", "+@all"},
		{"ACL", "SETUSER", user + "np", "on", ">s3cret", "~*", "-@all", "+hello"},
	} {
		if err := admin.Do(ctx, acl...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { admin.Do(ctx, "ACL", "DELUSER", user, user+"np") })
	host := srv.Addr
	for _, tc := range []struct{ url, want string }{
		{"redis://" + user + ":wr0ng-s3cret@" + host + "/0", "refused the user name or password: fix the password in --redis"},
		{"redis://" + user + "np:s3cret@" + host + "/0", "does not let the user of --redis run what capcheck needs"},
		{"redis://" + host + "/999", "has no database of the number in --redis"},
	} {
		u := mustParse(t, tc.url)
		start := time.Now()
		err := u.Wait(ctx, newClient(t, u, Options{}), WaitOptions{Max: 20 * time.Second, configGrace: 200 * time.Millisecond})
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Wait(%s) = %v, want ErrConfig saying %q", u, err, tc.want)
			continue
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Wait(%s) took %s: retried", u, d)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Wait(%s) = %v: shows the password", u, err)
		}
	}
	// Waited for: a Redis that is not up yet.
	g := newGate(t, srv.Addr)
	u := mustParse(t, "redis://"+g.ln.Addr().String()+"/0")
	if err := u.Wait(ctx, newClient(t, u, Options{}), WaitOptions{Max: 50 * time.Millisecond}); err == nil || errors.Is(err, ErrConfig) {
		t.Errorf("Wait on a Redis that does not answer = %v, want an error that is no ErrConfig", err)
	}
}

// A password refused while it is being rotated (the new one reached capcheck
// before Redis) is waited out: Wait connects once Redis takes it, and says
// meanwhile that Redis refuses the settings.
func TestWaitRefusedPasswordChanged(t *testing.T) {
	t.Parallel()
	srv := redistest.Shared(t)
	ctx := context.Background()
	admin := srv.Client(t)
	user := "u" + redistest.NewPrefix(t)
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "on", ">0ld-s3cret", "~*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Do(ctx, "ACL", "DELUSER", user) })
	u := mustParse(t, "redis://"+user+":n3w-s3cret@"+srv.Addr+"/0")
	time.AfterFunc(500*time.Millisecond, func() {
		admin.Do(ctx, "ACL", "SETUSER", user, "resetpass", ">n3w-s3cret")
	})
	log, logs := newLogger()
	o := WaitOptions{Logger: log, Max: 20 * time.Second, configGrace: 10 * time.Second,
		backoff: func(int) time.Duration { return 50 * time.Millisecond }}
	if err := u.Wait(ctx, newClient(t, u, Options{}), o); err != nil {
		t.Fatalf("Wait while the password changes = %v, want nil", err)
	}
	if !strings.Contains(logs.String(), "Redis refuses the settings in --redis; waiting in case they are being changed") {
		t.Errorf("Wait logged %q, want it to say Redis refuses the settings", logs.String())
	}
}

// sentinelAnswer is a Redis error answer, as go-redis returns it.
type sentinelAnswer string

func (e sentinelAnswer) Error() string { return string(e) }
func (sentinelAnswer) RedisError()     {}

// With Sentinel, go-redis joins every sentinel's error when none answers:
// that is a configuration error only when every sentinel's is, and it names
// the sentinels, with the fix for them.
func TestMisconfiguredSentinels(t *testing.T) {
	t.Parallel()
	u := mustParse(t, "redis-sentinel://:s3cret@h1:26379,h2:26379?master=m")
	allDown := func(errs ...error) error {
		return u.explain(fmt.Errorf("redis: all sentinels specified in configuration are unreachable: %w", errors.Join(errs...)))
	}
	noPass := sentinelAnswer("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	if err := u.misconfigured(allDown(noPass, refused)); err != nil {
		t.Errorf("one sentinel refusing the password, one restarting: %v, want no configuration error", err)
	}
	err := u.misconfigured(allDown(noPass, noPass))
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "The sentinels of ") ||
		!strings.Contains(err.Error(), "set the master's password on the sentinels as well") {
		t.Errorf("every sentinel without a password = %v, want an ErrConfig naming the sentinels and the fix", err)
	}
	err = u.misconfigured(u.explain(sentinelAnswer("WRONGPASS invalid username-password pair or user is disabled.")))
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "The Redis master of ") {
		t.Errorf("master refusing the password = %v, want an ErrConfig naming the master", err)
	}
	if strings.Contains(fmt.Sprint(err), "s3cret") {
		t.Errorf("%v: shows the password", err)
	}
}
