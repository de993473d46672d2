// Package capapi is a client for the provider's SMS-over-IP capability check:
//
//	POST {base}/v1/{sid}/messages/soip/capability-check
//
// A call never returns a Go error: every outcome, including network failures,
// is a [Result] whose [Class] tells the caller what to do next (record the
// numbers, bisect the batch, stop the job, pause the fleet or retry).
package capapi

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults of [Config].
const (
	// BaseURLDefault is the provider's base URL of its default region.
	// Config.BaseURL has no default; commands offer this one.
	BaseURLDefault = "https://api.kaleyra.io"
	// TimeoutDefault is the default per-request timeout.
	TimeoutDefault = 10 * time.Second
	// MaxConnsDefault is the default connection pool size per host.
	MaxConnsDefault = 16
)

// maxBodyBytes caps how much of a response body is read: the provider's
// answers are a few hundred bytes, anything larger is not one of them.
const maxBodyBytes = 1 << 20

// apiPath is appended to the base URL, with the SID in place of %s.
const apiPath = "/v1/%s/messages/soip/capability-check"

// Config configures a [Client]. The zero values of optional fields are
// replaced by their defaults in [Config.WithDefaults].
type Config struct {
	// BaseURL is the provider's regional base URL, e.g.
	// "https://api.kaleyra.io"; a trailing slash is tolerated. It must not
	// carry credentials, a query or a fragment. Required; no default.
	BaseURL string

	// SID is the account's SID, the path segment after /v1/. Required; no
	// default.
	SID string

	// APIKey is sent in the api-key header. It never appears in an error,
	// a log line or a String() of this package. Required; no default.
	APIKey string

	// CallbackProfileID is sent as callback_profile_id; the field is omitted
	// when empty, and the account's default profile applies. Defaults to "".
	CallbackProfileID string

	// Timeout bounds one request, from sending to the end of reading the
	// answer. Defaults to TimeoutDefault (10s).
	Timeout time.Duration

	// MaxConns is the connection pool size per host (idle and total); size it
	// for the number of concurrent callers. Ignored when HTTPClient is set.
	// Defaults to MaxConnsDefault (16).
	MaxConns int

	// WarmConns is how many connections Warm opens (at most MaxConns): the
	// callers a pool usually has, when MaxConns is sized for more at times.
	// Defaults to MaxConns.
	WarmConns int

	// WireE164 sends numbers in E.164 with a leading '+' ("+9198...") instead
	// of the provider's documented digits-only form ("9198..."). Defaults to
	// false.
	WireE164 bool

	// HTTPClient replaces the client built from MaxConns, e.g. in tests. Its
	// redirect policy is kept; a redirect answer is reported as Fatal. Defaults
	// to nil (a client of this package's own, which never follows redirects).
	HTTPClient *http.Client

	// tlsConfig is the base TLS configuration of the client's own
	// connections (tests: a private CA).
	tlsConfig *tls.Config
}

// WithDefaults returns a copy of c with zero optional fields set to their
// defaults.
func (c Config) WithDefaults() Config {
	c.Timeout = cmp.Or(c.Timeout, TimeoutDefault)
	c.MaxConns = cmp.Or(c.MaxConns, MaxConnsDefault)
	c.WarmConns = min(cmp.Or(c.WarmConns, c.MaxConns), c.MaxConns)
	return c
}

// Validate reports every problem with c (errors.Join), in words that say
// what to fix. It expects defaults to be filled in already.
func (c Config) Validate() error {
	var errs []error
	if err := CheckBaseURL(c.BaseURL); err != nil {
		errs = append(errs, fmt.Errorf("capapi: API base URL %w", err))
	}
	if err := CheckSID(c.SID); err != nil {
		errs = append(errs, fmt.Errorf("capapi: SID %w", err))
	}
	if err := CheckAPIKey(c.APIKey); err != nil {
		errs = append(errs, fmt.Errorf("capapi: API key %w", err))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("capapi: timeout must be positive, got %s", c.Timeout))
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("capapi: max connections must be positive, got %d", c.MaxConns))
	}
	if c.WarmConns < 0 {
		errs = append(errs, fmt.Errorf("capapi: connections to open ahead must be positive, got %d", c.WarmConns))
	}
	return errors.Join(errs...)
}

// The checks of the values an operator configures. Each error reads after
// the value's name ("must not contain credentials ...") and never repeats
// the value, which may hold a secret.

// CheckBaseURL says what is wrong with a base URL, if anything: it must be
// http:// or https://, with a host, and without credentials, query or
// fragment.
func CheckBaseURL(base string) error {
	const form = "use the form https://host[/prefix], such as " + BaseURLDefault
	if base == "" {
		return errors.New("is empty: " + form)
	}
	// Any '@': user info, even one whose unencoded '/' or '?' hides it
	// from url.Parse.
	if strings.Contains(base, "@") {
		return errors.New("must not contain credentials (user:password@): give the API key on its own")
	}
	u, err := url.Parse(base)
	switch {
	case err != nil: // url.Parse's error repeats the input
		return errors.New("cannot be parsed: " + form)
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must start with http:// or https://: " + form)
	case u.Host == "":
		return errors.New("has no host: " + form)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return errors.New("must not contain a query or fragment: " + form)
	}
	return nil
}

// CheckSID says what is wrong with an account SID, if anything: it is one
// path segment of the API's URL.
func CheckSID(sid string) error {
	switch {
	case strings.TrimSpace(sid) == "":
		return errors.New("is empty: set the account SID")
	case strings.ContainsAny(sid, "/?#%") || hasControl(sid):
		return errors.New("must be one URL path segment: no /, ?, #, % or spaces")
	}
	return nil
}

// CheckAPIKey says what is wrong with an API key, if anything.
func CheckAPIKey(key string) error {
	switch {
	case key == "":
		return errors.New("is empty: set the API key (or a file holding it)")
	case hasControl(key):
		return errors.New("contains whitespace or control characters (a trailing newline from a file?): remove them")
	}
	return nil
}

// String describes c with the API key redacted.
func (c Config) String() string {
	return fmt.Sprintf("capapi.Config{BaseURL:%q SID:%q APIKey:%s CallbackProfileID:%q Timeout:%s MaxConns:%d WireE164:%t}",
		c.BaseURL, c.SID, redactedMark(c.APIKey), c.CallbackProfileID, c.Timeout, c.MaxConns, c.WireE164)
}

// GoString is String, so that %#v does not print the API key either.
func (c Config) GoString() string { return c.String() }

// LogValue keeps the API key out of structured logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("base_url", c.BaseURL),
		slog.String("sid", c.SID),
		slog.String("api_key", redactedMark(c.APIKey)),
		slog.String("callback_profile_id", c.CallbackProfileID),
		slog.Duration("timeout", c.Timeout),
		slog.Int("max_conns", c.MaxConns),
		slog.Bool("wire_e164", c.WireE164),
	)
}

func redactedMark(key string) string {
	if key == "" {
		return `""`
	}
	return "[REDACTED]"
}

// hasControl reports whether s holds a space or a control character, which
// cannot be part of a key and would make net/http refuse the header.
func hasControl(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return true
		}
	}
	return false
}

// Client calls the capability-check API. It is safe for concurrent use.
type Client struct {
	cfg Config
	// endpoint is the full URL of the API path. Validate keeps credentials
	// and queries out of the base URL, so errors may show it.
	endpoint string
	hc       *http.Client
	own      bool   // hc was built here, so CloseIdleConnections may touch it
	bodyEnd  string // what follows the numbers in a request body
	// lastBody is the last answer body parsed (see Client.parseBody).
	lastBody atomic.Pointer[parsedBody]
	// dialer opens hc's connections (nil with a caller's HTTPClient or a
	// proxy); addr is the API's host:port.
	dialer *dialer
	addr   string
	// pool carries the requests on the dialer's connections, without
	// hc (direct.go); nil without a dialer. url is the endpoint's, and
	// reqHead the head of every request up to its Content-Length.
	pool    *directPool
	url     *url.URL
	reqHead string
}

// New returns a client for cfg, with defaults filled in. It returns an error
// that says what to fix when cfg is not usable.
func New(cfg Config) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.BaseURL) // checked by Validate
	u.Path = strings.TrimRight(u.Path, "/") + fmt.Sprintf(apiPath, url.PathEscape(cfg.SID))
	u.RawPath = ""
	c := &Client{cfg: cfg, endpoint: u.String(), hc: cfg.HTTPClient, bodyEnd: bodyEnd(cfg)}
	if c.hc == nil {
		c.hc, c.dialer = newHTTPClient(cfg, u)
		c.own = true
		c.addr = u.Host
		if u.Port() == "" {
			c.addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
		}
		if c.dialer != nil {
			c.url = u
			c.reqHead = c.head()
			c.pool = newDirectPool(c.dialer, c.addr, cfg.MaxConns)
		}
	}
	return c, nil
}

// newHTTPClient builds a client whose pool holds cfg.MaxConns connections
// per host, so that concurrent workers reuse connections instead of opening
// new ones for each call. Its connections are opened by the returned dialer,
// unless a proxy is set for u (then nil).
func newHTTPClient(cfg Config, u *url.URL) (*http.Client, *dialer) {
	maxConns := cfg.MaxConns
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = max(tr.MaxIdleConns, maxConns)
	tr.MaxIdleConnsPerHost = maxConns
	tr.MaxConnsPerHost = maxConns
	var d *dialer
	if proxy, err := tr.Proxy(&http.Request{URL: u}); err == nil && proxy == nil {
		d = &dialer{net: &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}}
		if u.Scheme == "https" {
			d.tls = &tls.Config{NextProtos: []string{"http/1.1"}}
			if cfg.tlsConfig != nil {
				d.tls = cfg.tlsConfig.Clone()
				d.tls.NextProtos = []string{"http/1.1"}
			}
		}
		d.install(tr)
	}
	return &http.Client{
		Transport: tr,
		// A POST that gets redirected becomes a GET; the redirect is shown to
		// the operator as a configuration error instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, d
}

// Warm opens connections to the API (DNS, TCP and TLS) until the client's
// pool has WarmConns of them, in parallel, so that the first requests of a
// job do not pay for the set-up after their rate-limit slot: call it before
// the first permit is taken. Connections it opens are used within 10 s or
// closed. It sends no request. It does nothing (and returns nil) with a
// Config.HTTPClient or a proxy, and when the pool is full already; an error
// says a connection could not be opened (the request that needs one will
// report it).
func (c *Client) Warm(ctx context.Context) error {
	if c == nil || c.dialer == nil {
		return nil
	}
	if err := c.dialer.warm(ctx, c.addr, c.cfg.WarmConns); err != nil {
		return fmt.Errorf("capapi: opening connections to %s: %w", c.addr, err)
	}
	return nil
}

// CloseIdleConnections closes the idle connections of the client's own pool.
// It does nothing when Config.HTTPClient was given.
func (c *Client) CloseIdleConnections() {
	if c != nil && c.own {
		c.hc.CloseIdleConnections()
	}
	if c != nil && c.pool != nil {
		c.pool.closeIdle()
	}
	if c != nil && c.dialer != nil {
		c.dialer.closeStash()
	}
}

// String describes the client without its API key.
func (c *Client) String() string {
	if c == nil {
		return "capapi.Client(nil)"
	}
	return "capapi.Client(" + c.endpoint + ")"
}
