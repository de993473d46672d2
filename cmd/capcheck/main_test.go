package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/internal/filetest"
	"github.com/capcheck/capcheck/internal/testbin"
)

func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

const testKey = "S3CR3T-KEY-123"
const testToken = "CB-T0KEN-456"

// probeCommand is a test-only command taking every non-mock flag group, to
// test the exit codes of options no registered command takes yet.
func probeCommand() *cli.Command {
	return &cli.Command{
		Name:  "probe",
		Flags: slices.Concat(configs.SharedFlags(), configs.APIFlags(), configs.EnqueueFlags(), configs.WorkerFlags()),
		Action: func(c *cli.Context) error {
			cfg, err := configs.Load(c)
			if err != nil {
				return err
			}
			return cfg.Validate(configs.Needs{})
		},
	}
}

// runInProcess runs capcheck's app (plus probe) with args; env is set with
// t.Setenv, so callers must not be parallel.
func runInProcess(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errb bytes.Buffer
	app := newApp(&out, &errb, append(commands(), probeCommand()))
	code = run(context.Background(), app, append([]string{"capcheck"}, args...))
	return code, out.String(), errb.String()
}

type usageCase struct {
	name string
	env  map[string]string
	args []string
	want string // part of the message on stderr, printed exactly once
}

func usageCases(t *testing.T) []usageCase {
	key := filetest.Temp(t, "key", testKey+"\n")
	return []usageCase{
		{name: "unknown command", args: []string{"frobnicate"},
			want: `capcheck: unknown command "frobnicate"; run 'capcheck --help' for the commands`},
		{name: "unknown flag", args: []string{"mock-api", "--bogus"},
			want: `capcheck: unknown flag --bogus; run 'capcheck mock-api --help' for the flags`},
		{name: "unknown global flag", args: []string{"--bogus"},
			want: `capcheck: unknown flag --bogus; run 'capcheck --help' for the flags`},
		{name: "flag without value", args: []string{"mock-api", "--sid"},
			want: `capcheck: flag --sid needs a value`},
		{name: "rate -1", args: []string{"mock-api", "--sid", "S", "--api-key-file", key, "--rate", "-1"},
			want: `capcheck: --rate must be 0 (no limit) or at least 1 (got -1); set --rate, CAPCHECK_MOCK_API_RATE or rate: under mock_api: in the config file`},
		{name: "rate abc", args: []string{"mock-api", "--sid", "S", "--api-key-file", key, "--rate", "abc"},
			want: `capcheck: --rate must be a number (got abc)`},
		{name: "missing sid", args: []string{"mock-api", "--api-key-file", key},
			want: `capcheck: --sid is required (the account SID); set --sid, CAPCHECK_SID or sid: in the config file`},
		{name: "missing key", args: []string{"mock-api", "--sid", "S"},
			want: `capcheck: an API key is required`},
		{name: "unreadable key file", args: []string{"mock-api", "--sid", "S", "--api-key-file", "/nonexistent/key"},
			want: `capcheck: --api-key-file names a file that cannot be read ("/nonexistent/key": no such file or directory)`},
		{name: "unknown YAML key", args: []string{"mock-api", "--config", filetest.Temp(t, "c.yaml", "sid: S\nrat: 1\n")},
			want: `line 2: unknown key "rat"`},
		{name: "unknown YAML key from CAPCHECK_CONFIG", env: map[string]string{"CAPCHECK_CONFIG": filetest.Temp(t, "c.yaml", "mock_api:\n  rat: 1\n")},
			args: []string{"mock-api"}, want: `line 2: unknown key "rat" under mock_api:`},
		{name: "bad value from the environment", env: map[string]string{"CAPCHECK_MOCK_API_LATENCY": "fast"},
			args: []string{"mock-api"}, want: `capcheck: --latency must be a duration such as 500ms, 10s or 1m30s (got fast from CAPCHECK_MOCK_API_LATENCY)`},
		{name: "argument", args: []string{"mock-api", "extra"},
			want: `capcheck: capcheck mock-api takes no arguments, got "extra"`},
		{name: "bad value of a command's own flag", args: []string{"wait", "--timeout", "soon", "job"},
			want: `capcheck: invalid value "soon" for flag --timeout: parse error; run 'capcheck wait --help' for the flags`},
		{name: "bad --format, before any Redis", args: []string{"export", "--format", "xml", "--redis", "redis://127.0.0.1:1/0", "--redis-wait", "0s", "job"},
			want: `capcheck: --format must be csv or jsonl (got "xml")`},
		{name: "bad --format of memory export", args: []string{"memory", "export", "--format", "xml", "--redis", "redis://127.0.0.1:1/0", "--redis-wait", "0s"},
			want: `capcheck: --format must be csv or jsonl (got "xml")`},
		{name: "negative --timeout of wait", args: []string{"wait", "--timeout", "-1s", "--redis", "redis://127.0.0.1:1/0", "--redis-wait", "0s", "job"},
			want: `capcheck: --timeout must be >= 0 (got -1s)`},
		{name: "help on an unknown topic", args: []string{"help", "frobnicate"},
			want: `capcheck: No help topic for 'frobnicate'`},
	}
}

func TestUsageErrors(t *testing.T) {
	cases := append(usageCases(t),
		usageCase{name: "bad redis URL", args: []string{"probe", "--redis", "localhost:6379"},
			want: `capcheck: --redis must be a Redis URL such as redis://127.0.0.1:6379/0`},
		usageCase{name: "bad redis URL from the environment", env: map[string]string{"CAPCHECK_REDIS": "redis://h:port/0"},
			args: []string{"probe"}, want: `(got redis://h:port/0 from CAPCHECK_REDIS); set --redis, CAPCHECK_REDIS or redis: in the config file`},
		usageCase{name: "bad job", args: []string{"probe", "--job", "a/b"},
			want: `capcheck: --job must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-' (and not . or ..) (got a/b)`},
		usageCase{name: "API rate -1", args: []string{"probe", "--rate", "-1"},
			want: `capcheck: --rate must be > 0 (got -1); set --rate, CAPCHECK_RATE or rate: in the config file`},
		usageCase{name: "every problem, one per line", args: []string{"probe", "--rate", "0", "--batch-size", "0"},
			want: "capcheck: --batch-size must be at least 1 (got 0); set --batch-size, CAPCHECK_BATCH_SIZE or batch_size: in the config file\n" +
				"capcheck: --rate must be > 0 (got 0)"},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runInProcess(t, tc.env, tc.args...)
			if code != exitUsage {
				t.Errorf("exit code %d; want %d", code, exitUsage)
			}
			if n := strings.Count(stderr, tc.want); n != 1 {
				t.Errorf("stderr has %q %d times; want once. stderr:\n%s", tc.want, n, stderr)
			}
			if strings.Contains(stdout, "capcheck: ") {
				t.Errorf("error on stdout:\n%s", stdout)
			}
		})
	}
}

func TestNoCommand(t *testing.T) {
	code, stdout, stderr := runInProcess(t, nil)
	if code != exitUsage || !strings.Contains(stdout, "COMMANDS:") || stderr != "capcheck: no command given\n" {
		t.Errorf("capcheck with no command: code %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

func TestHelp(t *testing.T) {
	code, stdout, _ := runInProcess(t, nil, "--help")
	if code != exitOK {
		t.Errorf("capcheck --help: exit code %d", code)
	}
	for _, c := range commands() {
		if !strings.Contains(stdout, "   "+c.Name+" ") {
			t.Errorf("capcheck --help does not list %s:\n%s", c.Name, stdout)
		}
		code, stdout, _ := runInProcess(t, nil, c.Name, "--help")
		if code != exitOK {
			t.Errorf("capcheck %s --help: exit code %d", c.Name, code)
		}
		for _, f := range c.Flags {
			if !strings.Contains(stdout, "--"+f.Names()[0]+" ") {
				t.Errorf("capcheck %s --help does not show --%s", c.Name, f.Names()[0])
			}
		}
	}
	_, stdout, _ = runInProcess(t, nil, "mock-api", "--help")
	for _, want := range []string{"[$CAPCHECK_MOCK_API_RATE]", "[$CAPCHECK_SID]", "(default: 127.0.0.1:8080)", "[$CAPCHECK_API_KEY]"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("capcheck mock-api --help lacks %q", want)
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("redis: connection refused"), exitError},
		{usageErrorf("bad"), exitUsage},
		{fmt.Errorf("loading: %w", &configs.Error{Msg: "bad"}), exitUsage},
		{&failedNumbersError{Job: "j", Failed: 3}, exitFailedNumbers},
		{fmt.Errorf("wait: %w", &failedNumbersError{Job: "j", Failed: 3}), exitFailedNumbers},
		{fmt.Errorf("wait: %w", errFailedNumbers), exitFailedNumbers},
		{cli.Exit("No help topic for 'x'", 3), exitUsage},
		{context.Canceled, exitError},
	}
	for _, tc := range tests {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d; want %d", tc.err, got, tc.want)
		}
	}
}

// capcheck runs the built binary with args and env (added to a clean
// environment), with a time limit.
func capcheck(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	bin := testbin.Build(t) // before the timeout: a build under load is slow
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// No test here may reach a Redis: a closed port makes commands that
	// connect fail at once (with no wait for Redis) instead of using a
	// machine's own Redis.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"CAPCHECK_REDIS=redis://127.0.0.1:1/0", "CAPCHECK_REDIS_WAIT=0"}, env...)
	cmd.Dir = t.TempDir()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("running capcheck %q: %v", args, err)
	}
	return code, out.String(), errb.String()
}

func TestBinaryUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range usageCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var env []string
			for k, v := range tc.env {
				env = append(env, k+"="+v)
			}
			code, stdout, stderr := capcheck(t, env, tc.args...)
			if code != exitUsage {
				t.Errorf("exit code %d; want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			if n := strings.Count(stderr, tc.want); n != 1 {
				t.Errorf("stderr has %q %d times; want once. stderr:\n%s\nstdout:\n%s", tc.want, n, stderr, stdout)
			}
		})
	}
}

// TestSecretsNeverPrinted runs every registered command, with the API key
// and the callback token each given every way, through help and bad-usage
// paths, and checks that neither secret is in any output.
func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	type delivery struct {
		env  []string
		args []string
	}
	deliveries := map[string]delivery{}
	for _, sec := range []struct{ name, value, flag, env, key string }{
		{"API key", testKey, "--api-key", "CAPCHECK_API_KEY", "api_key"},
		{"callback token", testToken, "--callback-token", "CAPCHECK_CALLBACK_TOKEN", "callback_token"},
	} {
		file := filetest.Temp(t, sec.key, sec.value+"\n")
		deliveries[sec.name+" flag"] = delivery{args: []string{sec.flag, sec.value}}
		deliveries[sec.name+" variable"] = delivery{env: []string{sec.env + "=" + sec.value}}
		deliveries[sec.name+" file"] = delivery{env: []string{sec.env + "_FILE=" + file}}
		deliveries[sec.name+" config"] = delivery{env: []string{"CAPCHECK_CONFIG=" + filetest.Temp(t, sec.key+".yaml", sec.key+": "+sec.value+"\n")}}
	}
	type run struct {
		name string
		args []string
	}
	runs := []run{{"help", []string{"--help"}}, {"help command", []string{"help"}}}
	for _, c := range commands() {
		runs = append(runs,
			run{c.Name + " --help", []string{c.Name, "--help"}},
			run{"help " + c.Name, []string{"help", c.Name}},
			run{c.Name + " unknown flag", []string{c.Name, "--bogus"}},
			run{c.Name + " bad value", []string{c.Name, "--log-level", "loud"}},
			run{c.Name + " bad values", []string{c.Name, "--sid", "a/b", "--rate", "-1", "--redis", "x", "--job", "/"}},
			run{c.Name + " argument", []string{c.Name, "extra"}},
			run{c.Name + " bad callback values", []string{c.Name, "--callback-listen", ":1", "--callback-header", "a b", "--redis", "x"}},
		)
	}
	for dname, d := range deliveries {
		for _, r := range runs {
			t.Run(dname+"/"+r.name, func(t *testing.T) {
				t.Parallel()
				args := r.args
				if len(d.args) > 0 && len(args) > 0 && args[0] != "--help" && args[0] != "help" {
					// The secret's flag goes after the command's name, before the rest.
					args = slices.Concat(args[:1], d.args, args[1:])
				}
				_, stdout, stderr := capcheck(t, d.env, args...)
				for _, secret := range []string{testKey, testToken} {
					if strings.Contains(stdout+stderr, secret) {
						t.Errorf("capcheck %q printed a secret:\nstdout:\n%s\nstderr:\n%s", args, stdout, stderr)
					}
				}
			})
		}
	}
}

// allCommands lists every command line's command: "worker", "memory stats".
func allCommands() [][]string {
	var out [][]string
	for _, c := range commands() {
		if len(c.Subcommands) == 0 {
			out = append(out, []string{c.Name})
		}
		for _, sub := range c.Subcommands {
			out = append(out, []string{c.Name, sub.Name})
		}
	}
	return out
}

// TestEmptyFlagThenSecret runs every command with a flag whose value is
// missing ("--sid $SID" with SID empty) followed by a secret given on the
// command line: the secret is in no output, and the message names the flag
// without a value.
func TestEmptyFlagThenSecret(t *testing.T) {
	t.Parallel()
	secrets := map[string][]string{
		"key":            {"--api-key", testKey},
		"key with =":     {"--api-key=", testKey},
		"token":          {"--callback-token", testKey},
		"redis password": {"--redis", "redis://:" + testKey + "@127.0.0.1:1/0"},
	}
	for _, cmd := range allCommands() {
		for name, secret := range secrets {
			args := slices.Concat(cmd, []string{"--log-level"}, secret)
			t.Run(strings.Join(args[:len(args)-1], " "), func(t *testing.T) {
				t.Parallel()
				code, stdout, stderr := capcheck(t, nil, args...)
				if strings.Contains(stdout+stderr, testKey) {
					t.Errorf("capcheck %q printed the secret (%s):\nstdout:\n%s\nstderr:\n%s", args, name, stdout, stderr)
				}
				if code != exitUsage || !strings.Contains(stderr, "--log-level") {
					t.Errorf("capcheck %q: exit %d, stderr:\n%s\nwant exit %d naming --log-level", args, code, stderr, exitUsage)
				}
			})
		}
	}
}

// TestURLPasswordsNeverPrinted gives Redis and API URLs whose passwords hold
// an unencoded / ? or #: the command stops (exit 2) without showing them.
func TestURLPasswordsNeverPrinted(t *testing.T) {
	t.Parallel()
	const pw = "PW0rd"
	for _, args := range [][]string{
		{"status", "--redis", "redis://:" + pw + "/x@127.0.0.1:1/0"},
		{"status", "--redis", "redis://:12345?" + pw + "@127.0.0.1:1/0"},
		{"status", "--redis", "redis://:" + pw + "#x@127.0.0.1:1/0"},
		{"worker", "--sid", "S", "--api-key", "k", "--api-url", "https://u:" + pw + "@api.example.com"},
		{"worker", "--sid", "S", "--api-key", "k", "--api-url", "https://u:" + pw + "/x@api.example.com"},
		{"run", "--input", "x.csv", "--sid", "S", "--api-key", "k", "--api-url", "https://api.example.com/?key=" + pw},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := capcheck(t, nil, args...)
			if strings.Contains(stdout+stderr, pw) || strings.Contains(stdout+stderr, "12345") {
				t.Errorf("capcheck %q printed the password:\nstdout:\n%s\nstderr:\n%s", args, stdout, stderr)
			}
			if code != exitUsage {
				t.Errorf("capcheck %q: exit %d; want %d. stderr:\n%s", args, code, exitUsage, stderr)
			}
		})
	}
}

// TestBinaryMockAPI runs capcheck mock-api briefly with the key given each
// way: it answers 202 with that key and 401 without it, logs (at debug level)
// without the key, and exits 0 on SIGTERM and SIGINT.
func TestBinaryMockAPI(t *testing.T) {
	t.Parallel()
	keyFile := filetest.Temp(t, "key", testKey+"\n")
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		args []string // how the key is given
		env  []string
	}{
		{"key file, SIGTERM", syscall.SIGTERM, []string{"--api-key-file", keyFile}, nil},
		{"key flag, SIGINT", syscall.SIGINT, []string{"--api-key", testKey}, nil},
		{"key variable, SIGTERM", syscall.SIGTERM, nil, []string{"CAPCHECK_API_KEY=" + testKey}},
	} {
		sig := tc.sig
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := slices.Concat([]string{"mock-api", "--listen", "127.0.0.1:0", "--sid", "SID1",
				"--log-format", "json", "--log-level", "debug"}, tc.args)
			cmd := exec.Command(testbin.Build(t), args...)
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tc.env...)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
			})

			// The first info line tells the address.
			var logs bytes.Buffer
			sc := bufio.NewScanner(io.TeeReader(stderr, &logs))
			var addr string
			for addr == "" && sc.Scan() {
				var line struct{ Msg, Addr string }
				if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "mock API listening" {
					addr = line.Addr
				}
			}
			if addr == "" {
				t.Fatalf("no listening line; stderr:\n%s", logs.String())
			}
			rest := make(chan struct{})
			go func() { _, _ = io.Copy(&logs, stderr); close(rest) }()
			go func() { <-rest; done <- cmd.Wait() }()

			url := "http://" + addr + "/v1/SID1/messages/soip/capability-check"
			for key, want := range map[string]int{testKey: http.StatusAccepted, "wrong": http.StatusUnauthorized} {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"number":"919876543210"}`))
				req.Header.Set("api-key", key)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("POST with key %q: status %d; want %d", key, resp.StatusCode, want)
				}
			}

			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("after %v: %v; stderr:\n%s", sig, err, logs.String())
				}
			case <-time.After(time.Minute): // a hang, not a timing bound
				t.Fatalf("mock-api did not stop within a minute of %v", sig)
			}
			if out := stdout.String() + logs.String(); strings.Contains(out, testKey) {
				t.Errorf("mock-api printed the API key:\n%s", out)
			}
		})
	}
}
