package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { Main(m) }

func TestStartPrivate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	s := StartPrivate(t)
	if !strings.HasPrefix(s.Addr, "127.0.0.1:") {
		t.Errorf("Addr = %q, want 127.0.0.1:port", s.Addr)
	}
	if want := "redis://" + s.Addr + "/0"; s.URL != want {
		t.Errorf("URL = %q, want %q", s.URL, want)
	}
	opt, err := redis.ParseURL(s.URL)
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", s.URL, err)
	}
	if opt.Addr != s.Addr {
		t.Errorf("URL's address = %q, want %q", opt.Addr, s.Addr)
	}

	rdb := s.Client(t)
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got := rdb.Get(ctx, "k").Val(); got != "v" {
		t.Errorf("GET k = %q, want v", got)
	}
	// The options the server was started with.
	for param, want := range map[string]string{
		"save":             "",
		"appendonly":       "no",
		"maxmemory-policy": "noeviction",
		"bind":             "127.0.0.1",
	} {
		got, err := rdb.ConfigGet(ctx, param).Result()
		if err != nil {
			t.Fatalf("CONFIG GET %s: %v", param, err)
		}
		if got[param] != want {
			t.Errorf("CONFIG GET %s = %q, want %q", param, got[param], want)
		}
	}

	s.Stop()
	s.Stop() // harmless
	if err := ping(s.Addr); err == nil {
		t.Errorf("PING %s answered after Stop", s.Addr)
	}
}

func TestStartPrivateServersAreDistinct(t *testing.T) {
	t.Parallel()
	a, b := StartPrivate(t), StartPrivate(t)
	if a.Addr == b.Addr {
		t.Fatalf("two private servers on one address %s", a.Addr)
	}
	ctx := context.Background()
	if err := a.Client(t).Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n := b.Client(t).Exists(ctx, "k").Val(); n != 0 {
		t.Errorf("key written on one server is visible on the other")
	}
}

func TestShared(t *testing.T) {
	t.Parallel()
	s1 := Shared(t)
	s2 := Shared(t)
	s3 := Start(t) // Main is in use: Start reuses the package's server
	if s1 != s2 || s1 != s3 {
		t.Fatalf("Shared/Start returned different servers: %s, %s, %s", s1.Addr, s2.Addr, s3.Addr)
	}
	if err := s1.Client(t).Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
}

func TestNewPrefix(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^t[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for range 1000 {
		p := NewPrefix(t)
		if !re.MatchString(p) {
			t.Fatalf("NewPrefix() = %q, want match for %s", p, re)
		}
		if seen[p] {
			t.Fatalf("NewPrefix() returned %q twice", p)
		}
		seen[p] = true
	}
}

// A port already taken makes redis-server exit; start retries on another.
func TestStartOnBusyPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	bin, err := findBinary()
	if err != nil {
		fail(t, err)
	}
	s, err := startOn(bin, port)
	if err == nil {
		s.Stop()
		t.Fatalf("startOn(busy port %d) succeeded", port)
	}
	if !errors.Is(err, errExited) {
		t.Errorf("startOn(busy port) = %v, want an error wrapping errExited", err)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Errorf("error %q does not name the port %d", err, port)
	}
}

// fakeTB records Skipf and Fatalf; both end the goroutine as testing.T does.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls fn with f in a goroutine of its own, as the testing package would.
func (f *fakeTB) run(fn func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
}

// Not parallel: it sets environment variables.
func TestMissingBinary(t *testing.T) {
	t.Setenv(EnvServer, "/nonexistent/redis-server")

	for _, ci := range []string{"", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("CI", ci)
			f := &fakeTB{TB: t}
			f.run(func(tb testing.TB) { StartPrivate(tb) })
			if f.failed == "" || f.skipped != "" {
				t.Fatalf("skipped %q, failed %q; want a failure", f.skipped, f.failed)
			}
			if !strings.Contains(f.failed, "apt-get install -y redis-server") {
				t.Errorf("failure message %q does not say how to install redis-server", f.failed)
			}
		})
	}
}

func TestEnvServerNamesBinary(t *testing.T) {
	bin, err := findBinary()
	if err != nil {
		fail(t, err)
	}
	t.Setenv(EnvServer, bin)
	got, err := findBinary()
	if err != nil || got != bin {
		t.Fatalf("findBinary() with %s=%s = %q, %v", EnvServer, bin, got, err)
	}
	s := StartPrivate(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Client(t).Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
}
