package configs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/internal/filetest"
)

// apiSideFlags are the flags of a command using every non-mock group;
// mockSideFlags those of mock-api. One command cannot have both (two --rate).
func apiSideFlags() []cli.Flag {
	return slices.Concat(SharedFlags(), APIFlags(), EnqueueFlags(), WorkerFlags(), CallbackFlags(), ForgetFlags(), ReportFlags())
}

func mockSideFlags() []cli.Flag {
	return slices.Concat(CommonFlags(), CredentialFlags(), MockAPIFlags(), CallbackAuthFlags())
}

var ignoreOrigins = cmpopts.IgnoreUnexported(Config{})

// loadArgs runs "capcheck cmd ARGS..." where cmd declares flags, and loads
// the config in cmd's action with env as the environment.
func loadArgs(t *testing.T, flags []cli.Flag, env map[string]string, args ...string) (*Config, error) {
	t.Helper()
	var (
		cfg     *Config
		loadErr error
		ran     bool
	)
	app := &cli.App{
		Name:           "capcheck",
		Writer:         io.Discard,
		ErrWriter:      io.Discard,
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{{
			Name:  "cmd",
			Flags: flags,
			Action: func(c *cli.Context) error {
				ran = true
				cfg, loadErr = load(c, func(k string) (string, bool) {
					v, ok := env[k]
					return v, ok
				})
				return nil
			},
		}},
	}
	if err := app.Run(append([]string{"capcheck", "cmd"}, args...)); err != nil {
		t.Fatalf("parsing %q: %v", args, err)
	}
	if !ran {
		t.Fatalf("command did not run with %q", args)
	}
	return cfg, loadErr
}

func mustLoad(t *testing.T, flags []cli.Flag, env map[string]string, args ...string) *Config {
	t.Helper()
	cfg, err := loadArgs(t, flags, env, args...)
	if err != nil {
		t.Fatalf("load %q with env %v: %v", args, env, err)
	}
	return cfg
}

// yamlFor is a config file setting option o to v.
func yamlFor(o *option, v string) string {
	line := o.key() + ": " + strconv.Quote(v) + "\n"
	if o.section != "" {
		return o.section + ":\n  " + line
	}
	return line
}

func defaults() *Config { return Defaults() }

func TestLoadDefaults(t *testing.T) {
	for name, flags := range map[string][]cli.Flag{"api side": apiSideFlags(), "mock side": mockSideFlags()} {
		t.Run(name, func(t *testing.T) {
			got := mustLoad(t, flags, nil)
			if diff := cmp.Diff(defaults(), got, ignoreOrigins); diff != "" {
				t.Errorf("no flags, env or file: config differs from defaults (-want +got):\n%s", diff)
			}
			if got.RedisExplicit {
				t.Error("RedisExplicit = true with no Redis configured")
			}
		})
	}
}

// samples holds two distinct valid values of every option but --config.
func samples(t *testing.T) map[*option][2]string {
	dir := t.TempDir()
	keyFile := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return map[*option][2]string{
		optRedis:             {"redis://a:6379/1", "rediss://:pw@b:6380/2"},
		optRedisWait:         {"0s", "30s"},
		optOut:               {"/tmp/out-a", "/tmp/out-b"},
		optLogFormat:         {"json", "text"},
		optLogLevel:          {"debug", "error"},
		optAPIURL:            {"https://api.in.kaleyra.io", "http://127.0.0.1:8080"},
		optSID:               {"SID-A", "SID-B"},
		optAPIKey:            {"key-a", "key-b"},
		optAPIKeyFile:        {keyFile("a", "file-key-a"), keyFile("b", "file-key-b")},
		optCallbackProfileID: {"cb-a", "cb-b"},
		optWireFormat:        {"e164", "digits"},
		optBatchSize:         {"50", "7"},
		optRate:              {"2.5", "40"},
		optTimeout:           {"3s", "1m"},
		optMaxAttempts:       {"2", "9"},
		optInput:             {"a.csv", "-"},
		optColumn:            {"phone", "3"},
		optDefaultRegion:     {"US", "gb"},
		optJob:               {"job-a", "nightly.2024-05-01"},
		optChunkSize:         {"10", "5000"},
		optConcurrency:       {"1", "64"},
		optMetricsAddr:       {":9090", "127.0.0.1:9191"},
		optShutdownTimeout:   {"5s", "2m"},
		optRetention:         {"0s", "24h"},
		optForgetAfter:       {"0s", "720h"},
		optRecheckAfter:      {"24h", "0s"},
		optListen:            {"127.0.0.1:0", ":8181"},
		optMockRate:          {"5", "1000"},
		optLatency:           {"20ms", "1s"},
		optJitter:            {"5ms", "2s"},
		optFailRate:          {"0.1", "0.5"},
		optResetRate:         {"0.01", "0.2"},
		optRejectSuffix:      {"99", "0"},
		optMaxBatch:          {"10", "500"},
		optSeed:              {"42", "-7"},

		optCallbackWait:          {"10m", "0s"},
		optCallbackURL:           {"http://127.0.0.1:8081/callback", "https://cb.example/x"},
		optCallbackDelay:         {"1s", "250ms"},
		optCallbackJitter:        {"2s", "10ms"},
		optCallbackDuplicateRate: {"0.1", "0.5"},
		optCallbackRefuseRate:    {"0.2", "1"},
		optCapableFraction:       {"0", "0.25"},
		optFlipFraction:          {"0.01", "0"},
		optCallbackListen:        {"127.0.0.1:8081", "localhost:9443"},
		optCallbackToken:         {"tok-a", "tok-b"},
		optCallbackTokenFile:     {keyFile("ta", "file-tok-a"), keyFile("tb", "file-tok-b")},
		optCallbackHeader:        {"X-Api-Key", "Authorization"},
		optCallbackNumberField:   {"data.mobile", "msisdn"},
		optCallbackStatusField:   {"data.soip", "result"},
		optCallbackCapable:       {"yes", "ok,enabled"},
		optCallbackNotCapable:    {"nope", "off, disabled"},
		optCallbackAllow:         {"203.0.113.0/24", "10.0.0.1,192.0.2.0/25"},
		optCallbackTLSCert:       {"a.pem", "b.pem"},
		optCallbackTLSKey:        {"a.key", "b.key"},
		optReportFormat:          {"png", "html"},
	}
}

// TestPrecedence checks flag > env > file > default for every option: for
// each pair of sources the stronger one wins, whichever sample it holds, and
// every source alone gives the same config as the flag alone.
func TestPrecedence(t *testing.T) {
	samples := samples(t)
	for _, o := range options {
		if o == optConfig {
			continue
		}
		t.Run(o.path(), func(t *testing.T) {
			s, ok := samples[o]
			if !ok {
				t.Fatalf("no samples for option %s: add them to samples()", o.path())
			}
			flags := apiSideFlags
			if o.section == mockSection {
				flags = mockSideFlags
			}
			// set loads with value v (or none, "") from each source.
			set := func(flag, env, file string) *Config {
				t.Helper()
				var args []string
				envs := map[string]string{}
				if flag != "" {
					args = append(args, "--"+o.name+"="+flag)
				}
				if env != "" {
					envs[o.env()] = env
				}
				if file != "" {
					args = append(args, "--config", filetest.Temp(t, "c.yaml", yamlFor(o, file)))
				}
				return mustLoad(t, flags(), envs, args...)
			}
			want := [2]*Config{set(s[0], "", ""), set(s[1], "", "")}
			if diff := cmp.Diff(want[0], want[1], ignoreOrigins); diff == "" {
				t.Fatalf("samples %q give the same config", s)
			}
			for i := range 2 {
				v, other := s[i], s[1-i]
				cases := []struct {
					name            string
					flag, env, file string
				}{
					{"env alone", "", v, ""},
					{"file alone", "", "", v},
					{"flag beats env", v, other, ""},
					{"flag beats file", v, "", other},
					{"env beats file", "", v, other},
					{"flag beats env and file", v, other, other},
				}
				for _, tc := range cases {
					got := set(tc.flag, tc.env, tc.file)
					if diff := cmp.Diff(want[i], got, ignoreOrigins, cmpopts.IgnoreFields(Config{}, "ConfigFile")); diff != "" {
						t.Errorf("%s (value %q): (-want +got):\n%s", tc.name, v, diff)
					}
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	mockCfg := filetest.Temp(t, "mock.yaml", "rate: 3\nmock_api:\n  rate: 7\n")
	tests := []struct {
		name  string
		flags func() []cli.Flag
		env   map[string]string
		args  []string
		want  func(c *Config)
	}{{
		name:  "env beats file",
		flags: apiSideFlags,
		env:   map[string]string{"CAPCHECK_RATE": "4"},
		args:  []string{"--config", filetest.Temp(t, "c.yaml", "rate: 3\nbatch_size: 20\n")},
		want:  func(c *Config) { c.API.Rate, c.API.BatchSize = 4, 20 },
	}, {
		name:  "empty variable counts as unset",
		flags: apiSideFlags,
		env:   map[string]string{"CAPCHECK_RATE": "", "CAPCHECK_SID": ""},
		args:  []string{"--config", filetest.Temp(t, "c.yaml", "rate: 3\n")},
		want:  func(c *Config) { c.API.Rate = 3 },
	}, {
		name:  "redis from the environment is explicit",
		flags: apiSideFlags,
		env:   map[string]string{"CAPCHECK_REDIS": "redis://r:6379/0"},
		want:  func(c *Config) { c.Redis, c.RedisExplicit = "redis://r:6379/0", true },
	}, {
		name:  "redis from the file is explicit",
		flags: apiSideFlags,
		args:  []string{"--config", filetest.Temp(t, "c.yaml", "redis: redis://r:6379/0\n")},
		want:  func(c *Config) { c.Redis, c.RedisExplicit = "redis://r:6379/0", true },
	}, {
		name:  "redis key with no value is not explicit",
		flags: apiSideFlags,
		args:  []string{"--config", filetest.Temp(t, "c.yaml", "redis:\nsid: ~\n")},
		want:  func(c *Config) {},
	}, {
		name:  "--config beats CAPCHECK_CONFIG",
		flags: apiSideFlags,
		env:   map[string]string{"CAPCHECK_CONFIG": filetest.Temp(t, "env.yaml", "batch_size: 1\n")},
		args:  []string{"--config", filetest.Temp(t, "flag.yaml", "batch_size: 2\n")},
		want:  func(c *Config) { c.API.BatchSize = 2 },
	}, {
		name:  "CAPCHECK_CONFIG alone",
		flags: apiSideFlags,
		env:   map[string]string{"CAPCHECK_CONFIG": filetest.Temp(t, "env.yaml", "batch_size: 1\n")},
		want:  func(c *Config) { c.API.BatchSize = 1 },
	}, {
		name:  "mock-api reads mock_api.rate, not rate",
		flags: mockSideFlags,
		args:  []string{"--config", mockCfg},
		want:  func(c *Config) { c.MockAPI.Rate = 7 },
	}, {
		name:  "the API side reads rate, not mock_api.rate",
		flags: apiSideFlags,
		args:  []string{"--config", mockCfg},
		want:  func(c *Config) { c.API.Rate = 3 },
	}, {
		name:  "mock-api's --rate is the simulator's",
		flags: mockSideFlags,
		env:   map[string]string{"CAPCHECK_RATE": "not read by mock-api"},
		args:  []string{"--rate", "12"},
		want:  func(c *Config) { c.MockAPI.Rate = 12 },
	}, {
		name:  "values are trimmed, enums and regions case-insensitive",
		flags: apiSideFlags,
		env:   map[string]string{"CAPCHECK_LOG_FORMAT": " JSON ", "CAPCHECK_DEFAULT_REGION": "de"},
		args:  []string{"--api-url", "https://api.eu.kaleyra.io/"},
		want: func(c *Config) {
			c.LogFormat, c.Enqueue.DefaultRegion, c.API.URL = LogFormatJSON, "DE", "https://api.eu.kaleyra.io"
		},
	}, {
		name:  "durations",
		flags: apiSideFlags,
		args:  []string{"--timeout", "1m30s", "--shutdown-timeout=250ms"},
		want:  func(c *Config) { c.API.Timeout, c.Worker.ShutdownTimeout = 90*time.Second, 250*time.Millisecond },
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mustLoad(t, tc.flags(), tc.env, tc.args...)
			want := defaults()
			tc.want(want)
			want.RedisExplicit = got.RedisExplicit && want.RedisExplicit // checked below
			if diff := cmp.Diff(want, got, ignoreOrigins, cmpopts.IgnoreFields(Config{}, "ConfigFile")); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			w := defaults()
			tc.want(w)
			if got.RedisExplicit != w.RedisExplicit {
				t.Errorf("RedisExplicit = %v, want %v", got.RedisExplicit, w.RedisExplicit)
			}
		})
	}
}

// TestLoadSubcommand checks the real shape: flags after the command's name.
func TestLoadSubcommand(t *testing.T) {
	var got *Config
	app := &cli.App{
		Name:           "capcheck",
		Writer:         io.Discard,
		ErrWriter:      io.Discard,
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{{
			Name:  "worker",
			Flags: slices.Concat(SharedFlags(), APIFlags(), WorkerFlags()),
			Action: func(c *cli.Context) error {
				var err error
				got, err = Load(c)
				return err
			},
		}},
	}
	t.Setenv("CAPCHECK_REDIS", "redis://from-env:6379/0")
	t.Setenv("CAPCHECK_CONCURRENCY", "3")
	if err := app.Run([]string{"capcheck", "worker", "--redis", "redis://from-flag:6379/5"}); err != nil {
		t.Fatal(err)
	}
	if got.Redis != "redis://from-flag:6379/5" || !got.RedisExplicit || got.Worker.Concurrency != 3 {
		t.Errorf("got Redis %q (explicit %v), Concurrency %d; want the flag's URL, explicit, 3 from the environment",
			got.Redis, got.RedisExplicit, got.Worker.Concurrency)
	}
}

func TestLoadAPIKey(t *testing.T) {
	keyFile := filetest.Temp(t, "key", "  from-file\n")
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantKey  string
		wantFile string
		wantErr  string
	}{
		{name: "flag", args: []string{"--api-key", "from-flag"}, wantKey: "from-flag"},
		{name: "file trimmed", args: []string{"--api-key-file", keyFile}, wantKey: "from-file", wantFile: keyFile},
		{name: "key file flag beats key variable",
			env:  map[string]string{"CAPCHECK_API_KEY": "from-env"},
			args: []string{"--api-key-file", keyFile}, wantKey: "from-file", wantFile: keyFile},
		{name: "key flag beats key file variable",
			env:  map[string]string{"CAPCHECK_API_KEY_FILE": keyFile},
			args: []string{"--api-key", "from-flag"}, wantKey: "from-flag"},
		{name: "key file variable beats key in config file",
			env:  map[string]string{"CAPCHECK_API_KEY_FILE": keyFile},
			args: []string{"--config", filetest.Temp(t, "c.yaml", "api_key: from-yaml\n")}, wantKey: "from-file", wantFile: keyFile},
		{name: "both flags",
			args:    []string{"--api-key", "from-flag", "--api-key-file", keyFile},
			wantErr: "both an API key (--api-key) and an API key file (--api-key-file) are set; keep one of them"},
		{name: "unreadable file",
			args:    []string{"--api-key-file", "/nonexistent/key"},
			wantErr: `--api-key-file names a file that cannot be read ("/nonexistent/key": no such file or directory); set --api-key-file, CAPCHECK_API_KEY_FILE or api_key_file: in the config file`},
		{name: "empty file",
			env:     map[string]string{"CAPCHECK_API_KEY_FILE": filetest.Temp(t, "empty", " \n")},
			wantErr: `names an empty file`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadArgs(t, apiSideFlags(), tc.env, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrUsage) {
					t.Fatalf("err = %v; want a usage error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.API.Key.Reveal() != tc.wantKey || got.API.KeyFile != tc.wantFile {
				t.Errorf("key %q from file %q; want %q from %q", got.API.Key.Reveal(), got.API.KeyFile, tc.wantKey, tc.wantFile)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		flags func() []cli.Flag
		env   map[string]string
		args  []string
		file  string // config file content, passed with --config
		want  string // the whole message; FILE stands for the config file's path
	}{{
		name: "not a number from a flag",
		args: []string{"--rate", "abc"},
		want: `--rate must be a number (got abc); set --rate, CAPCHECK_RATE or rate: in the config file`,
	}, {
		name: "not a number from the environment",
		env:  map[string]string{"CAPCHECK_BATCH_SIZE": "1.5"},
		want: `--batch-size must be a whole number (got 1.5 from CAPCHECK_BATCH_SIZE); set --batch-size, CAPCHECK_BATCH_SIZE or batch_size: in the config file`,
	}, {
		name: "not a duration from the file",
		file: "timeout: 10\n",
		want: `--timeout must be a duration such as 500ms, 10s or 1m30s (got 10 from timeout: in FILE line 1); set --timeout, CAPCHECK_TIMEOUT or timeout: in the config file`,
	}, {
		name:  "mock option from the file",
		flags: mockSideFlags,
		file:  "mock_api:\n  latency: soon\n",
		want:  `--latency must be a duration such as 500ms, 10s or 1m30s (got soon from latency: under mock_api: in FILE line 2); set --latency, CAPCHECK_MOCK_API_LATENCY or latency: under mock_api: in the config file`,
	}, {
		name: "bad enum",
		args: []string{"--log-level", "loud"},
		want: `--log-level must be debug, info, warn or error (got loud); set --log-level, CAPCHECK_LOG_LEVEL or log_level: in the config file`,
	}, {
		name: "NaN",
		args: []string{"--rate", "NaN"},
		want: `--rate must be a number (got NaN); set --rate, CAPCHECK_RATE or rate: in the config file`,
	}, {
		name: "unknown key",
		file: "sid: x\nrat: 5\n",
		want: `config file FILE line 2: unknown key "rat"; the keys are listed in configs/capcheck.example.yaml`,
	}, {
		name: "key spelled like the flag",
		file: "api-url: https://x\n",
		want: `config file FILE line 1: unknown key "api-url" (keys use _, not -: api_url); the keys are listed in configs/capcheck.example.yaml`,
	}, {
		name: "mock key at the top level",
		file: "latency: 1s\n",
		want: `config file FILE line 1: unknown key "latency" (mock-api options go under mock_api:); the keys are listed in configs/capcheck.example.yaml`,
	}, {
		name: "top-level key under mock_api",
		file: "mock_api:\n  sid: x\n",
		want: `config file FILE line 2: unknown key "sid" under mock_api: (sid is a top-level key, not a mock_api: one); the keys are listed in configs/capcheck.example.yaml`,
	}, {
		name: "unknown key is an error even when the command does not use the section",
		file: "mock_api:\n  lissen: :1\n",
		want: `config file FILE line 2: unknown key "lissen" under mock_api:; the keys are listed in configs/capcheck.example.yaml`,
	}, {
		name: "config is not a file key",
		file: "config: other.yaml\n",
		want: `config file FILE line 1: unknown key "config"; the keys are listed in configs/capcheck.example.yaml`,
	}, {
		name: "list value",
		file: "sid: [a, b]\n",
		want: `config file FILE line 1: sid: must be a single value, not a list or a mapping`,
	}, {
		name: "duplicate key",
		file: "sid: a\nsid: b\n",
		want: `config file FILE line 2: key "sid" appears twice`,
	}, {
		name: "not a mapping",
		file: "- sid\n",
		want: `config file FILE line 1: the file must be a mapping of keys to values (key: value)`,
	}, {
		name: "bad YAML",
		file: "sid: [\n",
		want: `config file FILE is not valid YAML: line 1: did not find expected node content`,
	}, {
		name: "unreadable config file",
		args: []string{"--config", "/nonexistent/c.yaml"},
		want: `--config: cannot read "/nonexistent/c.yaml": no such file or directory; set --config or CAPCHECK_CONFIG to a readable YAML file`,
	}, {
		name: "every problem at once",
		args: []string{"--rate", "x", "--chunk-size", "y"},
		want: "--rate must be a number (got x); set --rate, CAPCHECK_RATE or rate: in the config file\n" +
			"--chunk-size must be a whole number (got y); set --chunk-size, CAPCHECK_CHUNK_SIZE or chunk_size: in the config file",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			flags := apiSideFlags
			if tc.flags != nil {
				flags = tc.flags
			}
			args, want := tc.args, tc.want
			if tc.file != "" {
				path := filetest.Temp(t, "c.yaml", tc.file)
				args = append(args, "--config", path)
				want = strings.ReplaceAll(want, "FILE", path)
			}
			_, err := loadArgs(t, flags(), tc.env, args...)
			if err == nil {
				t.Fatal("no error")
			}
			if diff := cmp.Diff(want, err.Error()); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
			if !errors.Is(err, ErrUsage) {
				t.Errorf("errors.Is(%v, ErrUsage) = false", err)
			}
		})
	}
}

func TestLoadEmptyFile(t *testing.T) {
	for _, content := range []string{"", "# only a comment\n", "---\n", "mock_api:\n"} {
		got := mustLoad(t, apiSideFlags(), nil, "--config", filetest.Temp(t, "c.yaml", content))
		if diff := cmp.Diff(defaults(), got, ignoreOrigins, cmpopts.IgnoreFields(Config{}, "ConfigFile")); diff != "" {
			t.Errorf("file %q: (-want +got):\n%s", content, diff)
		}
	}
}

func ExampleError() {
	err := error(&Error{Option: FlagRate, Msg: "--rate must be > 0 (got -1); set --rate, CAPCHECK_RATE or rate: in the config file"})
	fmt.Println(errors.Is(err, ErrUsage))
	fmt.Println(err)
	// Output:
	// true
	// --rate must be > 0 (got -1); set --rate, CAPCHECK_RATE or rate: in the config file
}
