package mockapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/capcheck/capcheck/internal/sleep"
)

// maxBodyBytes bounds a request body: 100 numbers take a few kilobytes.
const maxBodyBytes = 1 << 20

// Provider codes and messages, as the real API writes them.
const (
	codeOK          = "MSG402"
	msgOK           = "Request Successfully Processed"
	codeInvalid     = "RBC529"
	msgInvalid      = "Invalid input or validation error!"
	codeUnauth      = "RBC401"
	codeRateLimited = "RBC429"
	codeUnavailable = "RBC503"
	codeNotFound    = "RBC404"
	codeMethod      = "RBC405"
)

// Server simulates the capability-check API. It is safe for concurrent use.
type Server struct {
	cfg   Config
	path  string
	limit int // requests allowed per 1-second window; 0 = unlimited
	log   *slog.Logger
	now   func() time.Time // replaced in tests

	mu       sync.Mutex
	rng      *rand.Rand
	admitted window // requests let through the rate limit
	arrivals window // every API request, for MaxWindow
	st       Stats
	seen     map[uint64]uint32 // accepted number (digits) → acceptances

	callbacks *sender // nil without CallbackURL
}

// New returns a server for cfg, with defaults filled in. It returns an error
// that says what to fix when cfg is not usable.
func New(cfg Config) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	seed := uint64(cfg.Seed)
	if seed == 0 {
		seed = rand.Uint64()
	}
	s := &Server{
		cfg:   cfg,
		path:  "/v1/" + cfg.SID + "/messages/soip/capability-check",
		limit: int(math.Floor(cfg.Rate)),
		log:   cfg.Logger,
		now:   time.Now,
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	s.clearStats()
	if cfg.CallbackURL != "" {
		s.callbacks = newSender(cfg, seed)
	}
	return s, nil
}

// Close stops sending callbacks (those not delivered yet are dropped). Serve
// calls it when it returns; closing twice is harmless.
func (s *Server) Close() {
	if s.callbacks != nil {
		s.callbacks.close()
	}
}

// Path returns the API path the server answers, with the configured SID.
func (s *Server) Path() string { return s.path }

// Handler returns the server's HTTP handler: the API path, GET /stats (the
// Stats as JSON) and POST /stats/reset (the Stats before zeroing them).
// Anything else is answered 404 like a wrong API path.
func (s *Server) Handler() http.Handler {
	// Not a ServeMux: it would answer odd paths with redirects, where the
	// provider answers 404.
	return http.HandlerFunc(s.serveHTTP)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var status, numbers int
	switch r.URL.Path {
	case "/stats":
		status = s.serveStats(w, r, false)
	case "/stats/reset":
		status = s.serveStats(w, r, true)
	default:
		status, numbers = s.serveAPI(w, r)
	}
	// The api-key header is deliberately not among these.
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "mock api request",
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int("numbers", numbers),
		slog.Duration("duration", time.Since(start)),
	)
}

// reply is the decided answer to an API request, written after the latency.
type reply struct {
	status     int
	code, msg  string
	detail     string // error.error of the body; "" gives "error":{}
	retryAfter int    // seconds, for 429
	drop       bool   // close the connection without answering
	numbers    int    // numbers in the request, for the log
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) (status, numbers int) {
	at := s.arrival(r)
	rep := s.decide(r, at)
	s.delay(r.Context(), at)
	// Counted before answering, so a client that has its answer sees it in
	// the Stats.
	if rep.drop {
		if conn := takeConnection(w); conn != nil {
			s.count(0)
			_ = conn.Close()
			return 0, rep.numbers
		}
		// Only possible if the connection cannot be taken over (HTTP/2);
		// a 503 is the nearest thing.
		rep = reply{status: http.StatusServiceUnavailable, code: codeUnavailable, msg: "Service Unavailable",
			detail: "simulated connection reset", numbers: rep.numbers}
	}
	s.count(rep.status)
	if rep.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(rep.retryAfter))
	}
	if rep.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	writeJSON(w, rep.status, body(rep.code, rep.msg, rep.detail))
	s.mu.Lock()
	s.st.LastAnswerUS = s.now().UnixMicro()
	s.mu.Unlock()
	return rep.status, rep.numbers
}

// decide checks a request that arrived at "at" in the provider's order:
// path and method, auth, rate limit, faults, then the body.
func (s *Server) decide(r *http.Request, at time.Time) reply {
	s.mu.Lock()
	s.st.Requests++
	s.arrivals.expire(at)
	s.st.MaxWindow = max(s.st.MaxWindow, s.arrivals.peak(at)+1)
	s.arrivals.add(at)
	s.st.PerSecond[at.Unix()]++
	us := at.UnixMicro()
	if s.st.FirstArrivalUS == 0 || us < s.st.FirstArrivalUS {
		s.st.FirstArrivalUS = us
	}
	s.st.LastArrivalUS = max(s.st.LastArrivalUS, us)
	s.mu.Unlock()

	if r.URL.Path != s.path {
		return reply{status: http.StatusNotFound, code: codeNotFound, msg: "Not Found",
			detail: "no such endpoint: " + clip(r.URL.Path)}
	}
	if r.Method != http.MethodPost {
		return reply{status: http.StatusMethodNotAllowed, code: codeMethod, msg: "Method Not Allowed",
			detail: "use POST"}
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("api-key")), []byte(s.cfg.APIKey)) != 1 {
		return reply{status: http.StatusUnauthorized, code: codeUnauth, msg: "Unauthorized", detail: "invalid api key"}
	}

	s.mu.Lock()
	if s.limit > 0 {
		// Refused if some sliding second holding its arrival would then
		// hold more than the limit: the one ending at it, or, as requests
		// are handled slightly out of their order, one ending at a later
		// arrival admitted already.
		s.admitted.expire(at)
		if s.admitted.peak(at) >= s.limit {
			s.st.RateLimited++
			s.mu.Unlock()
			// Room comes within a second, when the oldest arrivals of the
			// full window leave it.
			return reply{status: http.StatusTooManyRequests, code: codeRateLimited, msg: "Too Many Requests",
				detail:     fmt.Sprintf("rate limit of %d requests per second exceeded", s.limit),
				retryAfter: 1}
		}
		s.admitted.add(at)
	}
	u := s.rng.Float64()
	s.mu.Unlock()
	switch {
	case u < s.cfg.ResetRate:
		return reply{drop: true}
	case u < s.cfg.ResetRate+s.cfg.FailRate:
		return reply{status: http.StatusServiceUnavailable, code: codeUnavailable, msg: "Service Unavailable",
			detail: "simulated failure"}
	}

	numbers, err := s.readNumbers(r)
	if err != nil {
		return reply{status: http.StatusBadRequest, code: codeInvalid, msg: msgInvalid, detail: err.Error(),
			numbers: len(numbers)}
	}
	s.accept(numbers)
	if s.callbacks != nil {
		s.callbacks.accepted(numbers)
	}
	return reply{status: http.StatusAccepted, code: codeOK, msg: msgOK, numbers: len(numbers)}
}

// delay waits until Latency plus jitter after the request arrived at "at",
// or until the client is gone.
func (s *Server) delay(ctx context.Context, at time.Time) {
	d := s.cfg.Latency - s.now().Sub(at)
	if s.cfg.Jitter > 0 {
		s.mu.Lock()
		n := int64(s.cfg.Jitter)
		if n < math.MaxInt64 {
			n++ // Int64N excludes its bound; the jitter range includes Jitter
		}
		d += time.Duration(s.rng.Int64N(n))
		s.mu.Unlock()
	}
	_ = sleep.For(ctx, d) // a client gone is not an error here
}

// takeConnection takes the client's connection over, set so that closing
// it sends a TCP reset, the way a crashed proxy drops it. It returns nil
// when the connection cannot be taken over.
func takeConnection(w http.ResponseWriter) net.Conn {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil
	}
	sock := conn
	if u, ok := conn.(interface{ Unwrap() net.Conn }); ok { // Serve's stamped socket
		sock = u.Unwrap()
	}
	if tc, ok := sock.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return conn
}

// readNumbers reads and validates the request body. On error it also
// returns the numbers it could read, for the log.
func (s *Server) readNumbers(r *http.Request) ([]string, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, errors.New("content type must be application/json")
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading body: %v", err)
	}
	if len(data) > maxBodyBytes {
		return nil, fmt.Errorf("body larger than %d bytes", maxBodyBytes)
	}
	var req struct {
		Number            json.RawMessage `json:"number"`
		CallbackProfileID json.RawMessage `json:"callback_profile_id"`
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return nil, errors.New("body must be a JSON object")
	}
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, errors.New("body is not valid JSON")
	}
	if cb := bytes.TrimSpace(req.CallbackProfileID); len(cb) > 0 && cb[0] != '"' && string(cb) != "null" {
		return nil, errors.New("callback_profile_id must be a string")
	}
	numbers, err := parseNumbers(req.Number)
	if err != nil {
		return numbers, err
	}
	if len(numbers) > s.cfg.MaxBatch {
		return numbers, fmt.Errorf("too many numbers: %d, at most %d per request", len(numbers), s.cfg.MaxBatch)
	}
	for _, n := range numbers {
		if !validNumber(n) || (s.cfg.RejectSuffix != "" && strings.HasSuffix(n, s.cfg.RejectSuffix)) {
			return numbers, fmt.Errorf("invalid number: %s", clip(n))
		}
	}
	return numbers, nil
}

// parseNumbers reads the "number" field: a string holding one number or
// several separated by commas, or an array of strings.
func parseNumbers(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New("number is required")
	}
	var list []string
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, errors.New("number must be a string or an array of strings")
		}
		if strings.TrimSpace(s) == "" {
			return nil, errors.New("number is empty")
		}
		for n := range strings.SplitSeq(s, ",") {
			list = append(list, strings.TrimSpace(n))
		}
	case '[':
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, errors.New("number must be a string or an array of strings")
		}
		if len(list) == 0 {
			return nil, errors.New("number is empty")
		}
	default:
		return nil, errors.New("number must be a string or an array of strings")
	}
	return list, nil
}

// validNumber reports whether n is a number with country code: an optional
// '+', then 8 to 15 digits, the first not 0 (no country code starts with 0).
func validNumber(n string) bool {
	d := strings.TrimPrefix(n, "+")
	if len(d) < 8 || len(d) > 15 || d[0] == '0' {
		return false
	}
	for i := range len(d) {
		if d[i] < '0' || d[i] > '9' {
			return false
		}
	}
	return true
}

// clip keeps echoed input short: a body may carry a megabyte "number".
func clip(s string) string {
	const n = 40
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "") + "..."
	}
	return s
}

// accept records the numbers of an accepted request. Numbers are keyed by
// their digits, so "+9198..." and "9198..." are the same number.
func (s *Server) accept(numbers []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Accepted += int64(len(numbers))
	for _, n := range numbers {
		k, _ := strconv.ParseUint(strings.TrimPrefix(n, "+"), 10, 64) // validated: at most 15 digits
		s.seen[k]++
		if s.seen[k] == 1 {
			s.st.Distinct++
		} else {
			s.st.Repeated++
		}
	}
}

func (s *Server) count(status int) {
	s.mu.Lock()
	s.st.ByStatus[status]++
	s.mu.Unlock()
}

// errorDetail is the provider's "error" object: {} or {"error":"..."}.
type errorDetail struct {
	Error string `json:"error,omitempty"`
}

// apiBody is the provider's answer body.
type apiBody struct {
	Code    string      `json:"code"`
	Message string      `json:"message"`
	Data    []any       `json:"data"`
	Error   errorDetail `json:"error"`
}

func body(code, msg, detail string) apiBody {
	return apiBody{Code: code, Message: msg, Data: []any{}, Error: errorDetail{Error: detail}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil { // not reachable with the types above
		data = []byte(`{}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}
