package callbacks

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/phonenorm"
)

// Path is where callbacks are received.
const Path = "/callback"

// Receiver receives callbacks and writes them to a capstore.Store.
type Receiver struct {
	cfg     Config
	store   *capstore.Store
	status  map[string]capstore.Capability
	q       *queue
	logSome map[string]*rate.Sometimes // per kind of problem

	numberPath, statusPath []string // the fields' paths, split at '.'
}

// New returns a receiver writing to store. Start its committers with
// [Receiver.Start] before serving.
func New(store *capstore.Store, cfg Config) (*Receiver, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Receiver{cfg: cfg, store: store, status: map[string]capstore.Capability{},
		numberPath: strings.Split(cfg.NumberField, "."), statusPath: strings.Split(cfg.StatusField, ".")}
	for _, v := range cfg.Capable {
		r.status[norm(v)] = capstore.Capable
	}
	for _, v := range cfg.NotCapable {
		r.status[norm(v)] = capstore.NotCapable
	}
	r.q = newQueue(store, cfg)
	r.logSome = map[string]*rate.Sometimes{}
	for _, k := range []string{outcomeRefused, outcomeBadRequest, outcomeOverloaded, "error"} {
		r.logSome[k] = &rate.Sometimes{First: 5, Interval: time.Second}
	}
	return r, nil
}

// Start starts the committers; Stop (after the HTTP server has stopped
// handing requests to the receiver) writes what is queued and stops them.
func (r *Receiver) Start() { r.q.start() }

// Stop stops the committers once the callbacks queued are written, or ctx
// is done.
func (r *Receiver) Stop(ctx context.Context) error { return r.q.stop(ctx) }

// Handler serves POST, PUT and GET at /callback and GET /healthz.
func (r *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(Path, r.serveCallback)
	mux.HandleFunc("GET /healthz", r.serveHealth)
	return mux
}

func (r *Receiver) serveHealth(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), time.Second)
	defer cancel()
	if err := r.store.Ping(ctx); err != nil {
		http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

// reply is the body of every answer at /callback.
type reply struct {
	Stored      int    `json:"stored,omitempty"`
	Duplicate   int    `json:"duplicate,omitempty"`
	Unsolicited int    `json:"unsolicited,omitempty"`
	Error       string `json:"error,omitempty"`
}

func (r *Receiver) serveCallback(w http.ResponseWriter, req *http.Request) {
	start := r.cfg.Now()
	switch req.Method {
	case http.MethodPost, http.MethodPut, http.MethodGet:
	default:
		w.Header().Set("Allow", "POST, PUT, GET")
		r.answer(w, http.StatusMethodNotAllowed, reply{Error: "use POST, PUT or GET"})
		return
	}
	if code, why := r.admit(req); code != 0 {
		r.count(outcomeRefused, 1)
		r.logf(outcomeRefused, "callback refused", "source", source(req), "reason", why)
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="capcheck callbacks"`)
		}
		r.answer(w, code, reply{Error: why})
		return
	}
	buf := bodies.Get().(*bytes.Buffer)
	defer putBody(buf)
	_, err := buf.ReadFrom(http.MaxBytesReader(w, req.Body, r.cfg.MaxBody))
	body := buf.Bytes()
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		r.bad(w, http.StatusRequestEntityTooLarge, req, "body larger than "+strconv.FormatInt(r.cfg.MaxBody, 10)+" bytes", nil)
		return
	case err != nil:
		r.bad(w, http.StatusBadRequest, req, "reading body: "+err.Error(), nil)
		return
	}
	cbs, err := r.callbacks(req, body, start)
	if err != nil && len(cbs) == 0 {
		r.bad(w, http.StatusBadRequest, req, err.Error(), body)
		return
	}
	rep, code := r.commit(req.Context(), cbs)
	if code == http.StatusOK && err != nil {
		// The good callbacks of the request are stored; the bad ones are
		// named, and a retry of the whole request stores nothing twice.
		r.bad(w, http.StatusBadRequest, req, err.Error(), body)
		return
	}
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	r.observe(start)
	r.answer(w, code, rep)
}

// bodies recycles request bodies: nothing read from one outlives its
// request.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putBody(b *bytes.Buffer) {
	if b.Cap() <= 64<<10 { // a rare large body is left to the GC
		b.Reset()
		bodies.Put(b)
	}
}

// admit checks the source and the token; it returns 0 for a request let in.
func (r *Receiver) admit(req *http.Request) (int, string) {
	if len(r.cfg.Allow) > 0 && !allowed(r.cfg.Allow, sourceAddr(req.RemoteAddr)) {
		return http.StatusForbidden, "source address not allowed"
	}
	if r.cfg.Token == "" {
		return 0, ""
	}
	v := strings.TrimSpace(req.Header.Get(r.cfg.Header))
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		v = strings.TrimSpace(v[7:])
	}
	if v == "" {
		return http.StatusUnauthorized, "missing token in header " + r.cfg.Header
	}
	ok := subtle.ConstantTimeCompare([]byte(v), []byte(r.cfg.Token)) == 1
	if !ok && len(v) > 6 && strings.EqualFold(v[:6], "basic ") {
		// A profile with basic auth: the token is "user:password" (or the
		// whole header value, compared above).
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v[6:]))
		ok = err == nil && subtle.ConstantTimeCompare(b, []byte(r.cfg.Token)) == 1
	}
	if !ok {
		return http.StatusUnauthorized, "wrong token in header " + r.cfg.Header
	}
	return 0, ""
}

func allowed(nets []netip.Prefix, a netip.Addr) bool {
	for _, p := range nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// source is the request's source address, as logs name it.
func source(req *http.Request) string { return sourceAddr(req.RemoteAddr).String() }

func sourceAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// callbacks turns a request into callbacks; with an error, those of its
// parts that were good.
func (r *Receiver) callbacks(req *http.Request, body []byte, at time.Time) ([]capstore.Callback, error) {
	fields, err := r.extract(req, body)
	cbs := make([]capstore.Callback, 0, len(fields))
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, f := range fields {
		num, ok := r.normalize(f.number)
		if !ok {
			errs = append(errs, badf("number %q is not a valid phone number", clip(f.number)))
			continue
		}
		c, known := r.status[norm(f.status)]
		if !known {
			c = capstore.Unknown
		}
		cbs = append(cbs, capstore.Callback{Number: num, Capability: c, Raw: clip(norm(f.status)), At: at})
	}
	return cbs, errors.Join(errs...)
}

// normalize reads a callback's number. Providers send the numbers as they
// were sent to them, with country code and usually without '+'
// (9198XXXXXXXX): digits that make a valid number with a '+' in front are
// read so; anything else is read as enqueue reads a list (numbers without
// country code in the default region).
func (r *Receiver) normalize(raw string) (uint64, bool) {
	if raw != "" && raw[0] != '0' && strings.Trim(raw, "0123456789") == "" {
		if n := phonenorm.Normalize("+"+raw, r.cfg.DefaultRegion); n.Valid() {
			return n.Key, true
		}
	}
	n := phonenorm.Normalize(raw, r.cfg.DefaultRegion)
	return n.Key, n.Valid()
}

func (r *Receiver) bad(w http.ResponseWriter, code int, req *http.Request, msg string, body []byte) {
	r.count(outcomeBadRequest, 1)
	r.logf(outcomeBadRequest, "bad callback request", "source", source(req), "status", code,
		"problem", msg, "sample", clip(string(body)))
	r.answer(w, code, reply{Error: msg})
}

func (r *Receiver) answer(w http.ResponseWriter, code int, rep reply) {
	var buf [64]byte
	b := rep.append(buf[:0])
	w.Header()["Content-Type"] = contentJSON
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

var contentJSON = []string{"application/json"}

// append appends rep as json.Marshal writes it; by hand but for an error,
// since every callback gets a reply.
func (rep reply) append(b []byte) []byte {
	if rep.Error != "" {
		j, _ := json.Marshal(rep) // plain struct: cannot fail
		return append(b, j...)
	}
	b = append(b, '{')
	for _, f := range [...]struct {
		name string
		n    int
	}{{"stored", rep.Stored}, {"duplicate", rep.Duplicate}, {"unsolicited", rep.Unsolicited}} {
		if f.n == 0 {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, f.name...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, int64(f.n), 10)
	}
	return append(b, '}')
}

// logf logs a line for a kind of problem, sampled: a flood of bad requests
// must not become a flood of log lines.
func (r *Receiver) logf(kind, msg string, args ...any) {
	r.logSome[kind].Do(func() { r.cfg.Logger.Warn(msg, args...) })
}

// clip keeps echoed input short and printable.
func clip(s string) string {
	const n = 120
	if len(s) > n {
		s = s[:n] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
