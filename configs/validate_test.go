package configs

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/internal/filetest"
	"github.com/capcheck/capcheck/redisconn"
)

func TestValidate(t *testing.T) {
	key := filetest.Temp(t, "key", "k\n")
	creds := []string{"--sid", "S", "--api-key-file", key}
	tests := []struct {
		name  string
		mock  bool
		env   map[string]string
		args  []string
		needs Needs
		want  string // "" for valid
	}{
		{name: "defaults"},
		{name: "defaults, mock side", mock: true},
		{name: "credentials given", needs: Needs{Credentials: true}, args: creds},
		{name: "rate -1", args: []string{"--rate", "-1"},
			want: "--rate must be > 0 (got -1); set --rate, CAPCHECK_RATE or rate: in the config file"},
		{name: "rate 0 from the environment", env: map[string]string{"CAPCHECK_RATE": "0"},
			want: "--rate must be > 0 (got 0 from CAPCHECK_RATE); set --rate, CAPCHECK_RATE or rate: in the config file"},
		{name: "missing sid", needs: Needs{Credentials: true}, args: []string{"--api-key", "k"},
			want: "--sid is required (the account SID); set --sid, CAPCHECK_SID or sid: in the config file"},
		{name: "missing key", needs: Needs{Credentials: true}, args: []string{"--sid", "S"},
			want: "an API key is required; set --api-key-file, CAPCHECK_API_KEY_FILE or api_key_file: in the config file to a file holding it (or --api-key, CAPCHECK_API_KEY or api_key:)"},
		{name: "sid with a slash", args: []string{"--sid", "a/b"},
			want: "--sid must be one URL path segment: no /, ?, #, % or spaces (got a/b); set --sid, CAPCHECK_SID or sid: in the config file"},
		{name: "key with a space is not shown", args: []string{"--api-key", "S3CR3T KEY"},
			want: "--api-key contains whitespace or control characters (a trailing newline from a file?): remove them (value not shown); set --api-key, CAPCHECK_API_KEY or api_key: in the config file"},
		{name: "missing input", needs: Needs{Input: true},
			want: "--input is required: a file path, or - for standard input; set --input, CAPCHECK_INPUT or input: in the config file"},
		{name: "bad redis scheme", args: []string{"--redis", "localhost:6379"},
			want: `--redis must be a Redis URL such as redis://127.0.0.1:6379/0 (forms: redis://, rediss://, redis-socket://PATH, redis-sentinel://HOST:PORT[,...]?master=NAME, redis-cluster://HOST:PORT[,...]): unknown scheme "localhost" (got localhost:6379); set --redis, CAPCHECK_REDIS or redis: in the config file`},
		{name: "bad redis scheme 2", args: []string{"--redis", "http://127.0.0.1:6379"},
			want: `--redis must be a Redis URL such as redis://127.0.0.1:6379/0 (forms: redis://, rediss://, redis-socket://PATH, redis-sentinel://HOST:PORT[,...]?master=NAME, redis-cluster://HOST:PORT[,...]): unknown scheme "http" (got http://127.0.0.1:6379); set --redis, CAPCHECK_REDIS or redis: in the config file`},
		{name: "redis password is not shown", args: []string{"--redis", "redis://:hunter2@h:6379/x"},
			want: `--redis must be a Redis URL such as redis://127.0.0.1:6379/0 (forms: redis://, rediss://, redis-socket://PATH, redis-sentinel://HOST:PORT[,...]?master=NAME, redis-cluster://HOST:PORT[,...]): invalid database number: "x" (got redis://:xxxxx@h:6379/x); set --redis, CAPCHECK_REDIS or redis: in the config file`},
		{name: "redis without host", args: []string{"--redis", "redis:///0"},
			want: `--redis must be a Redis URL such as redis://127.0.0.1:6379/0 (forms: redis://, rediss://, redis-socket://PATH, redis-sentinel://HOST:PORT[,...]?master=NAME, redis-cluster://HOST:PORT[,...]): the host is missing (got redis:///0); set --redis, CAPCHECK_REDIS or redis: in the config file`},
		{name: "redis password with a slash", args: []string{"--redis", "redis://:s3cr/et@h:6379/0"},
			want: "--redis must be a Redis URL such as redis://127.0.0.1:6379/0 (forms: " + redisconn.Forms + "): an '@' after the host: percent-encode '/', '?', '#' and '@' in a password (%2F, %3F, %23, %40) (got redis://xxxxx@h:6379/0); set --redis, CAPCHECK_REDIS or redis: in the config file"},
		{name: "redis password with a question mark", args: []string{"--redis", "redis://:12345?s3cret@h:6379/0"},
			want: "--redis must be a Redis URL such as redis://127.0.0.1:6379/0 (forms: " + redisconn.Forms + "): an '@' after the host: percent-encode '/', '?', '#' and '@' in a password (%2F, %3F, %23, %40) (got redis://xxxxx@h:6379/0); set --redis, CAPCHECK_REDIS or redis: in the config file"},
		{name: "redis password with a hash", args: []string{"--redis", "redis://:s3cr#et@h:6379/0"},
			want: "--redis must be a Redis URL such as redis://127.0.0.1:6379/0 (forms: " + redisconn.Forms + "): an '@' after the host: percent-encode '/', '?', '#' and '@' in a password (%2F, %3F, %23, %40) (got redis://xxxxx@h:6379/0); set --redis, CAPCHECK_REDIS or redis: in the config file"},
		{name: "api url with credentials", args: []string{"--api-url", "https://u:s3cr/et@api.kaleyra.io"},
			want: "--api-url must not contain credentials (user:password@): give the API key on its own (got https://xxxxx@api.kaleyra.io); set --api-url, CAPCHECK_API_URL or api_url: in the config file"},
		{name: "api url with a query", args: []string{"--api-url", "https://api.kaleyra.io/?key=s3cret"},
			want: "--api-url must not contain a query or fragment: use the form https://host[/prefix], such as https://api.kaleyra.io (got https://api.kaleyra.io/?key=xxxxx); set --api-url, CAPCHECK_API_URL or api_url: in the config file"},
		{name: "redis forms", args: []string{"--redis", "redis-sentinel://:pw@h1:26379,h2:26379?master=m"}},
		{name: "redis socket", args: []string{"--redis", "redis-socket:///run/redis.sock?db=2"}},
		{name: "redis cluster", args: []string{"--redis", "redis-cluster://:pw@10.0.0.1:7000,10.0.0.2:7000"}},
		{name: "redis sentinel without master", args: []string{"--redis", "redis-sentinel://h1:26379"},
			want: `--redis must be a Redis URL such as redis://127.0.0.1:6379/0 (forms: redis://, rediss://, redis-socket://PATH, redis-sentinel://HOST:PORT[,...]?master=NAME, redis-cluster://HOST:PORT[,...]): the master name is missing: add ?master=NAME (the name the sentinels monitor) (got redis-sentinel://h1:26379); set --redis, CAPCHECK_REDIS or redis: in the config file`},
		{name: "api url", args: []string{"--api-url", "api.kaleyra.io"},
			want: "--api-url must start with http:// or https://: use the form https://host[/prefix], such as https://api.kaleyra.io (got api.kaleyra.io); set --api-url, CAPCHECK_API_URL or api_url: in the config file"},
		{name: "chunk size above the maximum", args: []string{"--chunk-size", "100001"},
			want: "--chunk-size must be 1 to 100000 (got 100001); set --chunk-size, CAPCHECK_CHUNK_SIZE or chunk_size: in the config file"},
		{name: "chunk size at the maximum", args: []string{"--chunk-size", "100000"}},
		{name: "api url with credentials", args: []string{"--api-url", "https://u:hunter2@api.kaleyra.io"},
			want: "--api-url must not contain credentials (user:password@): give the API key on its own (got https://u:xxxxx@api.kaleyra.io); set --api-url, CAPCHECK_API_URL or api_url: in the config file"},
		{name: "api url query is not shown", args: []string{"--api-url", "https://api.kaleyra.io/?token=hunter2"},
			want: "--api-url must not contain a query or fragment: use the form https://host[/prefix], such as https://api.kaleyra.io (got https://api.kaleyra.io/?token=xxxxx); set --api-url, CAPCHECK_API_URL or api_url: in the config file"},
		{name: "redis password with a '?' is not shown", args: []string{"--redis", "redis://:12345?hunter2@h:6379/0"},
			want: `--redis must be a Redis URL such as redis://127.0.0.1:6379/0 (forms: redis://, rediss://, redis-socket://PATH, redis-sentinel://HOST:PORT[,...]?master=NAME, redis-cluster://HOST:PORT[,...]): an '@' after the host: percent-encode '/', '?', '#' and '@' in a password (%2F, %3F, %23, %40) (got redis://xxxxx@h:6379/0); set --redis, CAPCHECK_REDIS or redis: in the config file`},
		{name: "bad job", args: []string{"--job", "../etc"},
			want: "--job must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-' (and not . or ..) (got ../etc); set --job, CAPCHECK_JOB or job: in the config file"},
		{name: "job ..", args: []string{"--job", ".."},
			want: "--job must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-' (and not . or ..) (got ..); set --job, CAPCHECK_JOB or job: in the config file"},
		{name: "long job", args: []string{"--job", strings.Repeat("j", 129)},
			want: "--job must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-' (and not . or ..) (got " + strings.Repeat("j", 129) + "); set --job, CAPCHECK_JOB or job: in the config file"},
		{name: "job of 128", args: []string{"--job", strings.Repeat("j", 128)}},
		{name: "region", args: []string{"--default-region", "XX"},
			want: "--default-region must be a region code libphonenumber knows, such as IN, US, GB or DE (got XX); set --default-region, CAPCHECK_DEFAULT_REGION or default_region: in the config file"},
		{name: "column 0", args: []string{"--column", "0"},
			want: "--column must be a header name or a column number from 1 (got 0); set --column, CAPCHECK_COLUMN or column: in the config file"},
		{name: "sizes", args: []string{"--batch-size", "0", "--chunk-size", "-5", "--max-attempts", "0", "--concurrency", "0"},
			want: "--batch-size must be at least 1 (got 0); set --batch-size, CAPCHECK_BATCH_SIZE or batch_size: in the config file\n" +
				"--max-attempts must be at least 1 (got 0); set --max-attempts, CAPCHECK_MAX_ATTEMPTS or max_attempts: in the config file\n" +
				"--chunk-size must be 1 to 100000 (got -5); set --chunk-size, CAPCHECK_CHUNK_SIZE or chunk_size: in the config file\n" +
				"--concurrency must be at least 1 (got 0); set --concurrency, CAPCHECK_CONCURRENCY or concurrency: in the config file"},
		{name: "durations", args: []string{"--timeout", "0s", "--shutdown-timeout", "-1s"},
			want: "--timeout must be > 0 (got 0s); set --timeout, CAPCHECK_TIMEOUT or timeout: in the config file\n" +
				"--shutdown-timeout must be > 0 (got -1s); set --shutdown-timeout, CAPCHECK_SHUTDOWN_TIMEOUT or shutdown_timeout: in the config file"},
		{name: "metrics addr", args: []string{"--metrics-addr", "9090"},
			want: "--metrics-addr must be HOST:PORT or :PORT, such as :9090 (got 9090); set --metrics-addr, CAPCHECK_METRICS_ADDR or metrics_addr: in the config file"},
		{name: "mock rate -1", mock: true, args: []string{"--rate", "-1"},
			want: "--rate must be 0 (no limit) or at least 1 (got -1); set --rate, CAPCHECK_MOCK_API_RATE or rate: under mock_api: in the config file"},
		{name: "mock fractions", mock: true, env: map[string]string{"CAPCHECK_MOCK_API_FAIL_RATE": "0.6"}, args: []string{"--reset-rate", "0.5"},
			want: "--fail-rate plus --reset-rate must not exceed 1 (got 0.6 + 0.5 from CAPCHECK_MOCK_API_FAIL_RATE); set --fail-rate, CAPCHECK_MOCK_API_FAIL_RATE or fail_rate: under mock_api: in the config file"},
		{name: "mock fraction", mock: true, args: []string{"--fail-rate", "2"},
			want: "--fail-rate must be between 0 and 1 (got 2); set --fail-rate, CAPCHECK_MOCK_API_FAIL_RATE or fail_rate: under mock_api: in the config file"},
		{name: "mock misc", mock: true, args: []string{"--listen", "8080", "--latency", "-1ms", "--reject-suffix", "9x", "--max-batch", "0"},
			want: "--listen must be HOST:PORT or :PORT, such as 127.0.0.1:8080 (got 8080); set --listen, CAPCHECK_MOCK_API_LISTEN or listen: under mock_api: in the config file\n" +
				"--latency must not be negative (got -1ms); set --latency, CAPCHECK_MOCK_API_LATENCY or latency: under mock_api: in the config file\n" +
				"--reject-suffix must be digits only (got 9x); set --reject-suffix, CAPCHECK_MOCK_API_REJECT_SUFFIX or reject_suffix: under mock_api: in the config file\n" +
				"--max-batch must be at least 1 (got 0); set --max-batch, CAPCHECK_MOCK_API_MAX_BATCH or max_batch: under mock_api: in the config file"},
		{name: "mock credentials", mock: true, needs: Needs{Credentials: true}, args: []string{"--sid", "S", "--api-key", "K"}},
		{name: "callback listen required", needs: Needs{CallbackListen: true},
			want: "--callback-listen is required: the address the provider's callbacks come to, such as :8443; set --callback-listen, CAPCHECK_CALLBACK_LISTEN or callback_listen: in the config file"},
		{name: "callback on loopback needs no token", needs: Needs{CallbackListen: true}, args: []string{"--callback-listen", "127.0.0.1:8081"}},
		{name: "callback on localhost needs no token", args: []string{"--callback-listen", "localhost:8081"}},
		{name: "callback on every interface needs a token", args: []string{"--callback-listen", ":8081"},
			want: "a callback token is required when --callback-listen (:8081) is not a loopback address; set --callback-token-file, CAPCHECK_CALLBACK_TOKEN_FILE or callback_token_file: in the config file to a file holding it (or --callback-token, CAPCHECK_CALLBACK_TOKEN or callback_token:)"},
		{name: "callback with token", args: []string{"--callback-listen", "0.0.0.0:8081", "--callback-token", "S3CR3T"}},
		{name: "callback token with a space", args: []string{"--callback-token", "S3CR3T x"},
			want: "--callback-token must not contain spaces or control characters (value not shown); set --callback-token, CAPCHECK_CALLBACK_TOKEN or callback_token: in the config file"},
		{name: "callback values", args: []string{"--callback-capable", "yes,ok", "--callback-not-capable", "no,OK",
			"--callback-number-field", "data.", "--callback-header", "X Key", "--callback-tls-cert", "c.pem"},
			want: "--callback-header must be an HTTP header name such as Authorization or X-Api-Key (got \"X Key\"); set --callback-header, CAPCHECK_CALLBACK_HEADER or callback_header: in the config file\n" +
				"--callback-number-field must be a field name or a dot path such as data.mobile (got data.); set --callback-number-field, CAPCHECK_CALLBACK_NUMBER_FIELD or callback_number_field: in the config file\n" +
				"--callback-not-capable must not repeat a value of --callback-capable (\"OK\") (got no,OK); set --callback-not-capable, CAPCHECK_CALLBACK_NOT_CAPABLE or callback_not_capable: in the config file\n" +
				"--callback-tls-key and --callback-tls-cert go together: set both files, or neither (TLS terminated in front); set --callback-tls-key, CAPCHECK_CALLBACK_TLS_KEY or callback_tls_key: in the config file"},
		{name: "callback allow", args: []string{"--callback-allow", "10.0.0.0/8, 192.0.2.7"}},
		{name: "mock callbacks", mock: true, args: []string{"--callback-url", "ftp://x", "--callback-delay", "-1s", "--capable-fraction", "1.5"},
			want: "--callback-url must be an http:// or https:// URL such as http://127.0.0.1:8081/callback (got ftp://x); set --callback-url, CAPCHECK_MOCK_API_CALLBACK_URL or callback_url: under mock_api: in the config file\n" +
				"--callback-delay must not be negative (got -1s); set --callback-delay, CAPCHECK_MOCK_API_CALLBACK_DELAY or callback_delay: under mock_api: in the config file\n" +
				"--capable-fraction must be between 0 and 1 (got 1.5); set --capable-fraction, CAPCHECK_MOCK_API_CAPABLE_FRACTION or capable_fraction: under mock_api: in the config file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			flags := apiSideFlags
			if tc.mock {
				flags = mockSideFlags
			}
			cfg := mustLoad(t, flags(), tc.env, tc.args...)
			err := cfg.Validate(tc.needs)
			got := ""
			if err != nil {
				got = err.Error()
				if !errors.Is(err, ErrUsage) {
					t.Errorf("errors.Is(%v, ErrUsage) = false", err)
				}
				var ce *Error
				if !errors.As(err, &ce) || ce.Option == "" && !strings.HasPrefix(got, "an API key") {
					t.Errorf("errors.As(*Error) gives %+v", ce)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
			if strings.Contains(got, "S3CR3T") || strings.Contains(got, "hunter2") || strings.Contains(got, "s3cr") || strings.Contains(got, "12345") {
				t.Errorf("message shows a secret: %s", got)
			}
		})
	}
}

func TestValidateZeroConfig(t *testing.T) {
	// A Config built by hand without WithDefaults fails with messages, not a panic.
	err := (&Config{}).Validate(Needs{Credentials: true, Input: true})
	if err == nil || !errors.Is(err, ErrUsage) {
		t.Fatalf("Validate of a zero Config = %v; want usage errors", err)
	}
	if err := defaults().Validate(Needs{}); err != nil {
		t.Fatalf("Validate of the defaults: %v", err)
	}
}

func TestCheckJobID(t *testing.T) {
	for id, ok := range map[string]bool{
		"nightly-2024.05.01_a": true, "A": true, strings.Repeat("x", 128): true,
		"": false, ".": false, "..": false, "a/b": false, "a b": false, "ä": false, strings.Repeat("x", 129): false,
	} {
		err := CheckJobID(id)
		if (err == nil) != ok {
			t.Errorf("CheckJobID(%q) = %v; want ok=%v", id, err, ok)
		}
		if err != nil && !errors.Is(err, ErrUsage) {
			t.Errorf("CheckJobID(%q) error does not match ErrUsage", id)
		}
	}
}
