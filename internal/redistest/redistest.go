package redistest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// EnvServer names the environment variable that may name the redis-server
	// binary to use (a path, or a name looked up in PATH).
	EnvServer = "CAPCHECK_TEST_REDIS_SERVER"

	// StartTimeout is how long Start waits for a new server to answer PING:
	// only a server that cannot start reaches it, even on a loaded machine.
	StartTimeout = time.Minute

	installHint = "install it with `apt-get install -y redis-server`, or set " + EnvServer + " to its path"

	// startAttempts bounds the retries when the free port found was taken
	// by someone else before redis-server could bind it.
	startAttempts = 5
)

// Server is a running redis-server.
type Server struct {
	// Addr is the server's address, "127.0.0.1:port".
	Addr string
	// URL is the server's address as a URL, "redis://127.0.0.1:port/0".
	URL string

	cmd  *exec.Cmd
	dir  string
	out  *tailBuffer
	done chan struct{} // closed when the process has exited
	err  error         // the process's exit status; read after done is closed

	stopOnce sync.Once
}

// Start starts a redis-server for the test and returns it; tb.Cleanup stops
// it. When the package uses [Main], Start returns the package's shared server
// instead (see [Shared]); use [StartPrivate] for a server of the test's own.
//
// When no redis-server binary is found, or it does not start, the test fails.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if mainUsed() {
		return Shared(tb)
	}
	return StartPrivate(tb)
}

// StartPrivate starts a redis-server that belongs to the test alone, even when
// the package uses [Main]; tb.Cleanup stops it. Use it for tests that flush,
// reconfigure or stop the server.
func StartPrivate(tb testing.TB) *Server {
	tb.Helper()
	s, err := start()
	if err != nil {
		fail(tb, err)
		return nil
	}
	tb.Cleanup(s.Stop)
	return s
}

// Client returns a client of s; tb.Cleanup closes it.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr})
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Stop kills the server and waits for it to exit. Stopping twice is harmless.
// Tests rarely need it: Start and StartPrivate stop the server on cleanup.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
		if s.dir != "" {
			_ = os.RemoveAll(s.dir)
		}
	})
}

// exited reports whether the process has exited (or was stopped).
func (s *Server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// NewPrefix returns a token unique to this call, such as "t3f9c0a1b2c3d4e5f":
// lower-case letters and digits only, so it is safe as a Redis key prefix and
// as a job ID. Tests that share a server use it to keep their keys apart.
func NewPrefix(tb testing.TB) string {
	tb.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	return "t" + hex.EncodeToString(b[:])
}

// Shared per package.

var shared struct {
	sync.Mutex
	main bool    // Main is running the tests
	srv  *Server // started lazily by Shared
	err  error   // why starting it failed; later callers fail the same way
}

func mainUsed() bool {
	shared.Lock()
	defer shared.Unlock()
	return shared.main
}

// Main runs the package's tests and stops the shared server, if one was
// started, after they have run; then it exits with their status. Call it from
// TestMain:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
func Main(m *testing.M) {
	shared.Lock()
	shared.main = true
	shared.Unlock()

	code := m.Run()

	shared.Lock()
	if shared.srv != nil {
		shared.srv.Stop()
		shared.srv = nil
	}
	shared.Unlock()
	os.Exit(code)
}

// Shared returns the package's shared server, starting it on first use. It
// outlives the test and is stopped by [Main]. Without Main (no TestMain calls
// it) there is no one to stop a shared server, so Shared starts a server of the
// test's own, as [StartPrivate] does.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	shared.Lock()
	if !shared.main {
		shared.Unlock()
		return StartPrivate(tb)
	}
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = start()
	}
	s, err := shared.srv, shared.err
	shared.Unlock()
	if err != nil {
		fail(tb, err)
		return nil
	}
	return s
}

// Starting and stopping the process.

// errNotFound marks a missing redis-server binary; its message says how to
// install one.
var errNotFound = errors.New("redis-server not found")

// fail reports err on tb. It never skips: a test that needs Redis and did not
// run has not passed.
func fail(tb testing.TB, err error) {
	tb.Helper()
	tb.Fatalf("redistest: %v", err)
}

// findBinary returns the path of the redis-server to run.
func findBinary() (string, error) {
	if name := os.Getenv(EnvServer); name != "" {
		p, err := exec.LookPath(name)
		if err != nil {
			return "", fmt.Errorf("%w: %s=%q: %v; %s", errNotFound, EnvServer, name, err, installHint)
		}
		return p, nil
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/redis-server", "/usr/local/bin/redis-server"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w in PATH, /usr/bin or /usr/local/bin; %s", errNotFound, installHint)
}

// start starts a redis-server on a free loopback port, retrying with another
// port when the one found was taken meanwhile.
func start() (*Server, error) {
	return startWith(freePort, func(port int) procSpec { return procSpec{port: port} })
}

// startWith starts the server spec gives for a port that free finds,
// retrying with another port when the one found was taken meanwhile.
func startWith(free func() (int, error), spec func(port int) procSpec) (*Server, error) {
	bin, err := findBinary()
	if err != nil {
		return nil, err
	}
	s, err := retryOnClash(func() (*Server, error) {
		port, err := free()
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		return startProc(bin, spec(port))
	})
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	return s, nil
}

// retryOnClash calls try again while it fails because its server exited
// at start (the free port found was taken meanwhile), startAttempts times at
// most; any other error is final.
func retryOnClash[T any](try func() (T, error)) (T, error) {
	var errs []error
	for range startAttempts {
		v, err := try()
		if err == nil {
			return v, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, errExited) {
			break // not a port clash: retrying will not help
		}
	}
	var zero T
	return zero, errors.Join(errs...)
}

// setUp starts what start starts, fails the test when it cannot (a set-up
// is never skipped: a missing binary is a broken test machine), and stops
// it at cleanup.
func setUp[T interface{ Stop() }](tb testing.TB, what string, start func() (T, error)) T {
	tb.Helper()
	v, err := start()
	if err != nil {
		tb.Fatalf("redistest: %s set-up: %v", what, err)
	}
	tb.Cleanup(v.Stop)
	return v
}

// ask returns what f finds within 30 s (a hang, not a timing bound), or
// fails the test saying what it was doing.
func ask[T any](tb testing.TB, doing string, f func(context.Context) (T, error)) T {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := f(ctx)
	if err != nil {
		tb.Fatalf("redistest: %s: %v", doing, err)
	}
	return v
}

// nodeClient is a client of the one server at addr that does not retry, so
// that a poll sees each failure.
func nodeClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

var errExited = errors.New("redis-server exited")

// procSpec says how to run one redis-server.
type procSpec struct {
	port int
	// conf, when set, is written to a file in the server's directory that is
	// passed first (a sentinel needs a config file it can rewrite).
	conf string
	// args are added to the common ones.
	args []string
}

func startOn(bin string, port int) (*Server, error) {
	return startProc(bin, procSpec{port: port})
}

func startProc(bin string, spec procSpec) (*Server, error) {
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, err
	}
	port := spec.port
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s := &Server{
		Addr: addr,
		URL:  "redis://" + addr + "/0",
		dir:  dir,
		out:  &tailBuffer{max: 4 << 10},
		done: make(chan struct{}),
	}
	var args []string
	if spec.conf != "" {
		conf := filepath.Join(dir, "redis.conf")
		if err := os.WriteFile(conf, []byte(spec.conf), 0o600); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		args = append(args, conf)
	}
	args = append(args,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--maxmemory-policy", "noeviction",
		"--daemonize", "no",
		"--dir", dir,
		"--loglevel", "warning",
	)
	s.cmd = exec.Command(bin, append(args, spec.args...)...)
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()

	if err := s.waitReady(StartTimeout); err != nil {
		s.Stop()
		return nil, fmt.Errorf("port %d: %w; output: %s", port, err, s.out.String())
	}
	return s, nil
}

// waitReady waits until the server answers PING, it exits, or timeout passes.
func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	delay := 2 * time.Millisecond
	for {
		select {
		case <-s.done:
			return fmt.Errorf("%w: %v", errExited, s.err)
		default:
		}
		err := ping(s.Addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v: %v", timeout, err)
		}
		select {
		case <-s.done:
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// ping sends one PING over a fresh connection and expects +PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 250*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(250 * time.Millisecond))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		// e.g. "-LOADING ..." while starting
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}

// Freeze stops the server's process (SIGSTOP) until the returned thaw is
// called (SIGCONT): a master that stops answering, as while a failover
// runs, and keeps its data. tb.Cleanup thaws it if the test did not.
func (s *Server) Freeze(tb testing.TB) (thaw func()) {
	tb.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		tb.Fatalf("freezing redis-server: %v", err)
	}
	var once sync.Once
	thaw = func() {
		once.Do(func() {
			if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil && !s.exited() {
				tb.Errorf("thawing redis-server: %v", err)
			}
		})
	}
	tb.Cleanup(thaw)
	return thaw
}
