package capapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The JSON body sent to the API is {"number":[...]} with
// "callback_profile_id" after the numbers when one is set. Numbers always go
// as an array: the comma-separated string form would break on a stray comma.
const bodyStart = `{"number":[`

// drainLimit bounds how much of an unread body is discarded to keep the
// connection reusable; beyond it closing is cheaper than reading.
const drainLimit = 64 << 10

var errBodyTooLarge = fmt.Errorf("response body larger than %d bytes", maxBodyBytes)

// Check asks the API to check numbers, given in E.164 with a leading '+'.
// They are sent in one request, converted to the wire form chosen by
// Config.WireE164. Check never panics and never returns a Go error: every
// outcome is a Result. When ctx is canceled before the answer's status
// came, the Result is Transient with an Err that wraps ctx.Err(); a 202 is
// Accepted whatever happens to its body.
func (c *Client) Check(ctx context.Context, numbers []string) Result {
	start := time.Now()
	r := c.check(ctx, numbers)
	r.Latency = time.Since(start)
	if c != nil {
		r = c.redact(r)
	}
	return r
}

func (c *Client) check(ctx context.Context, numbers []string) Result {
	if c == nil || c.hc == nil {
		return Result{Class: Fatal, Err: errors.New("capapi: client not created with capapi.New")}
	}
	if len(numbers) == 0 {
		// A caller bug, not a provider answer: sending it would earn a 400
		// that reads like invalid input and lead to a pointless bisection.
		return Result{Class: Fatal, Err: errors.New("capapi: Check called with no numbers")}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	body := c.body(numbers)

	// The timeout covers reading the body too, hence a context rather than
	// http.Client.Timeout (which a caller-supplied HTTPClient may not set).
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if c.pool != nil {
		return c.checkDirect(ctx, rctx, gateFrom(ctx), body)
	}
	if g := gateFrom(ctx); g != nil {
		if c.dialer != nil {
			var cancelReq context.CancelCauseFunc
			rctx, cancelReq = context.WithCancelCause(rctx)
			defer cancelReq(nil)
			rctx = armOnConn(rctx, g, cancelReq)
		} else if err := g.Ready(rctx); err != nil {
			return Result{Class: Transient, Err: fmt.Errorf("POST %s: %w: %w", c.endpoint, ErrNotSent, err)}
		}
	}
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return Result{Class: Fatal, Err: fmt.Errorf("capapi: building request for %s: %w", c.endpoint, unwrapURLError(err))}
	}
	// The keys in their canonical form, as Header.Set would write them.
	req.Header = http.Header{
		"Api-Key":      {c.cfg.APIKey},
		"Content-Type": {"application/json"},
		"Accept":       {"application/json"},
		"User-Agent":   {"capcheck"},
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		return c.failure(ctx, rctx, err)
	}
	data, err := readBody(resp.Body)
	return c.answered(ctx, rctx, resp, data, err)
}

// checkDirect is check on the client's own connections (direct.go).
func (c *Client) checkDirect(ctx, rctx context.Context, g SendGate, body []byte) Result {
	resp, data, err := c.direct(rctx, g, body)
	if dl, ok := rctx.Deadline(); err != nil && ok && !time.Now().Before(dl) {
		// The connection's deadline ended the exchange: the context's
		// ends with it, and says whose deadline it was.
		<-rctx.Done()
	}
	if resp == nil {
		return c.failure(ctx, rctx, err)
	}
	return c.answered(ctx, rctx, resp, data, err)
}

// answered classifies an answer whose body was read with err.
func (c *Client) answered(ctx, rctx context.Context, resp *http.Response, data []byte, err error) Result {
	status := resp.StatusCode
	switch {
	case err == nil:
		return c.classify(resp, data, time.Now())
	case status == http.StatusAccepted:
		// The provider took the numbers: sent again, they would be
		// checked (and called back) again. The body tells nothing else.
		if !errors.Is(err, errBodyTooLarge) {
			err = c.failure(ctx, rctx, err).Err
		}
		return Result{Class: Accepted, StatusCode: status, Message: http.StatusText(status),
			BodyErr: fmt.Errorf("reading the body of HTTP 202 from POST %s: %w", c.endpoint, err)}
	case errors.Is(err, errBodyTooLarge):
		return Result{Class: Transient, StatusCode: status, Message: http.StatusText(status),
			Err: fmt.Errorf("HTTP %d from POST %s: %w", status, c.endpoint, err)}
	default:
		return c.failure(ctx, rctx, err)
	}
}

// body encodes the request body: the E.164 numbers in the wire form chosen
// by Config.WireE164, as json.Marshal would, without its reflection. The
// numbers a caller passes are digits; any other one is encoded by
// json.Marshal.
func (c *Client) body(numbers []string) []byte {
	n := len(bodyStart) + len(c.bodyEnd)
	for _, s := range numbers {
		n += len(s) + 4
	}
	b := make([]byte, 0, n)
	b = append(b, bodyStart...)
	for i, s := range numbers {
		if i > 0 {
			b = append(b, ',')
		}
		s = strings.TrimPrefix(s, "+")
		if !plainJSON(s) {
			if c.cfg.WireE164 {
				s = "+" + s
			}
			q, _ := json.Marshal(s) // cannot fail: a string
			b = append(b, q...)
			continue
		}
		b = append(b, '"')
		if c.cfg.WireE164 {
			b = append(b, '+')
		}
		b = append(b, s...)
		b = append(b, '"')
	}
	return append(b, c.bodyEnd...)
}

// plainJSON reports whether json.Marshal writes s as itself between quotes:
// printable ASCII without the characters it escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch < 0x20 || ch > 0x7e, ch == '"', ch == '\\', ch == '<', ch == '>', ch == '&':
			return false
		}
	}
	return true
}

// bodyEnd is what follows the numbers in the request body of cfg.
func bodyEnd(cfg Config) string {
	if cfg.CallbackProfileID == "" {
		return "]}"
	}
	q, _ := json.Marshal(cfg.CallbackProfileID) // cannot fail: a string
	return `],"callback_profile_id":` + string(q) + "}"
}

// readBody reads at most maxBodyBytes and always closes the body, draining a
// bounded rest so the connection goes back to the pool.
func readBody(body io.ReadCloser) ([]byte, error) {
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, maxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxBodyBytes {
		return nil, errBodyTooLarge
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainLimit))
	return data, nil
}

// failure turns an error from sending or reading into a Transient result,
// or a Fatal one when the API's host name does not exist: a wrong
// --api-url, which no retry fixes.
func (c *Client) failure(ctx, rctx context.Context, err error) Result {
	var dns *net.DNSError
	switch {
	case errors.Is(err, ErrNotSent):
		return Result{Class: Transient, Err: fmt.Errorf("POST %s: %w", c.endpoint, unwrapURLError(err))}
	case errors.Is(context.Cause(rctx), ErrNotSent):
		return Result{Class: Transient, Err: fmt.Errorf("POST %s: %w", c.endpoint, context.Cause(rctx))}
	case errors.As(err, &dns) && dns.IsNotFound:
		return Result{Class: Fatal, Err: fmt.Errorf("POST %s: no such host %q: check the API base URL", c.endpoint, dns.Name)}
	case ctx.Err() != nil:
		return Result{Class: Transient, Err: fmt.Errorf("capability check canceled: %w", ctx.Err())}
	case errors.Is(rctx.Err(), context.DeadlineExceeded):
		return Result{Class: Transient, Err: fmt.Errorf("POST %s: timed out after %s: %w", c.endpoint, c.cfg.Timeout, context.DeadlineExceeded)}
	default:
		return Result{Class: Transient, Err: fmt.Errorf("POST %s: %w", c.endpoint, unwrapURLError(err))}
	}
}

// unwrapURLError drops *url.Error's copy of the URL, which is replaced by
// c.endpoint in messages; the cause keeps its identity for errors.Is/As.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// classify maps an HTTP answer to a Result. now is used for a Retry-After
// given as an HTTP date.
func (c *Client) classify(resp *http.Response, data []byte, now time.Time) Result {
	status := resp.StatusCode
	r := Result{StatusCode: status}
	pb, perr := c.parseBody(data)
	if perr == nil {
		r.Code, r.Message = pb.code, pb.message()
	}
	// Built for an error only: an accepted answer needs none.
	statusText := func() string { return "HTTP " + strconv.Itoa(status) + " " + http.StatusText(status) }
	switch {
	case status == http.StatusAccepted:
		// Whatever its body: the 202 carries no per-number detail.
		r.Class = Accepted
		if perr != nil {
			r.BodyErr = fmt.Errorf("%s with a malformed body: %w", statusText(), perr)
		}
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		r.Class = Unauthorized
	case status == http.StatusTooManyRequests:
		r.Class = RateLimited
		r.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	case status == http.StatusRequestTimeout || status >= 500:
		r.Class = Transient
		// The provider's message often repeats the status text.
		detail := strings.TrimPrefix(strings.TrimPrefix(r.Message, http.StatusText(status)), ": ")
		r.Err = errors.New(statusText() + suffix(detail))
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		r.Class = Fatal
		r.Err = fmt.Errorf("%s from POST %s: check the API base URL and SID", statusText(), c.endpoint)
	case status == http.StatusPaymentRequired:
		// About the account (balance, plan), not the numbers: every call
		// would get it.
		r.Class = Fatal
		r.Err = fmt.Errorf("%s from POST %s%s: the account cannot use the API", statusText(), c.endpoint,
			suffix(strings.TrimSpace(r.Code+" "+r.Message)))
	case status >= 400 && status < 500:
		provider := perr == nil && pb.isProviderError()
		switch {
		case provider && invalidInput(status):
			r.Class = Invalid
		case provider:
			// The provider refused the request, not its numbers (409,
			// 423, ...): bisecting would reject every number, and
			// remember it. Retried, the numbers end failed at worst.
			r.Class = Transient
			r.Err = fmt.Errorf("unexpected %s%s", statusText(), suffix(strings.TrimSpace(r.Code+" "+r.Message)))
		case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
			// The provider always answers these with its JSON body; without
			// one, something on the way garbled the answer.
			r.Class = Transient
			r.Err = fmt.Errorf("%s with a malformed body: %w", statusText(), cmpErr(perr, errors.New("no code or message")))
		default:
			r.Class = Fatal
			r.Err = fmt.Errorf("unexpected %s from POST %s: check the API base URL", statusText(), c.endpoint)
		}
	case status >= 300 && status < 400:
		r.Class = Fatal
		r.Err = fmt.Errorf("%s from POST %s redirects to %s: set the API base URL to the final address",
			statusText(), c.endpoint, stripQuery(resp.Header.Get("Location")))
	default: // 1xx, 2xx other than 202
		r.Class = Fatal
		r.Err = fmt.Errorf("unexpected %s from POST %s (the API answers 202): check the API base URL", statusText(), c.endpoint)
	}
	if r.Message == "" {
		r.Message = http.StatusText(status)
	}
	return r
}

// invalidInput reports whether a 4xx with a provider body refuses the
// request's numbers: 400 and 422 (validation), 413 (a batch too large,
// which bisection shrinks).
func invalidInput(status int) bool {
	return status == http.StatusBadRequest || status == http.StatusUnprocessableEntity ||
		status == http.StatusRequestEntityTooLarge
}

func suffix(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}

func cmpErr(err, alt error) error {
	if err != nil {
		return err
	}
	return alt
}

// stripQuery keeps a Location header's scheme, host and path.
func stripQuery(loc string) string {
	u, err := url.Parse(loc)
	if err != nil || loc == "" {
		return "an unreadable location"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment = nil, "", false, ""
	return u.String()
}

// providerBody is the provider's answer:
// {"code":"RBC529","message":"...","data":[],"error":{"error":"..."}}.
type providerBody struct {
	code, msg, detail string
}

func (p providerBody) isProviderError() bool { return p.code != "" || p.msg != "" || p.detail != "" }

// message joins the message and the error detail.
func (p providerBody) message() string {
	switch {
	case p.detail == "":
		return p.msg
	case p.msg == "":
		return p.detail
	default:
		return p.msg + ": " + p.detail
	}
}

// maxDetail bounds the text taken from a body, so one odd answer cannot
// bloat every result line written for its numbers.
const maxDetail = 512

// memoMax bounds the bodies Client.parseBody remembers.
const memoMax = 512

// parsedBody is a body and what parseBody made of it.
type parsedBody struct {
	data string
	pb   providerBody
	err  error
}

// parseBody is parseBody, remembering the last body of at most memoMax
// bytes: the provider answers every accepted call with the same one, so
// a worker decodes it once, not on every call.
func (c *Client) parseBody(data []byte) (providerBody, error) {
	if m := c.lastBody.Load(); m != nil && m.data == string(data) {
		return m.pb, m.err
	}
	pb, err := parseBody(data)
	if len(data) <= memoMax {
		c.lastBody.Store(&parsedBody{data: string(data), pb: pb, err: err})
	}
	return pb, err
}

// parseBody reads a provider body. It fails unless data is a JSON object.
func parseBody(data []byte) (providerBody, error) {
	var raw struct {
		Code    json.RawMessage `json:"code"`
		Message json.RawMessage `json:"message"`
		Error   json.RawMessage `json:"error"`
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return providerBody{}, errors.New("empty body")
	}
	if trimmed[0] != '{' {
		return providerBody{}, fmt.Errorf("not a JSON object: %s", snippet(trimmed))
	}
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return providerBody{}, fmt.Errorf("invalid JSON (%v): %s", err, snippet(trimmed))
	}
	return providerBody{
		code:   clip(printable(text(raw.Code))),
		msg:    clip(printable(text(raw.Message))),
		detail: clip(printable(text(raw.Error))),
	}, nil
}

// text renders a JSON value as plain text: a string as itself, an object
// as its "error" string or as "key: value" pairs, an array as its elements.
func text(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return strings.TrimSpace(s)
		}
	case '{':
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			break
		}
		if e := text(m["error"]); e != "" {
			return e
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var parts []string
		for _, k := range keys {
			if v := text(m[k]); v != "" {
				parts = append(parts, k+": "+v)
			}
		}
		return strings.Join(parts, "; ")
	case '[':
		var a []json.RawMessage
		if json.Unmarshal(raw, &a) != nil {
			break
		}
		var parts []string
		for _, v := range a {
			if s := text(v); s != "" {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, "; ")
	}
	return string(raw) // a number or boolean, as written
}

// printable returns s without control characters: the provider's text ends
// up on terminals (status, logs) and in files, where an escape sequence
// could rewrite what the operator sees. Line breaks and tabs become spaces;
// other C0 and C1 controls, DEL and bidirectional overrides are dropped.
func printable(s string) string {
	clean := func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case unicode.IsControl(r), r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
			return -1
		}
		return r
	}
	if strings.IndexFunc(s, func(r rune) bool { return clean(r) != r }) < 0 {
		return s
	}
	return strings.Map(clean, s)
}

func clip(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	return strings.ToValidUTF8(s[:maxDetail], "") + "..."
}

// snippet quotes the start of a body for an error message.
func snippet(b []byte) string {
	const n = 80
	if len(b) > n {
		return strconv.Quote(strings.ToValidUTF8(string(b[:n]), "")) + "..."
	}
	return strconv.Quote(string(b))
}

// parseRetryAfter reads a Retry-After value: delta seconds or an HTTP date.
// It returns 0 when v is absent, unreadable or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	// Fractions are not in RFC 9110 but cost nothing to honour.
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(f) || f <= 0 {
			return 0
		}
		if f >= math.MaxInt64/float64(time.Second) {
			return time.Duration(math.MaxInt64)
		}
		return time.Duration(f * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// minRedactLen: shorter keys would match ordinary words in messages, and
// real keys are long random strings.
const minRedactLen = 6

// redact removes the API key from every text of r, in case an answer (or a
// proxy's error page) echoes it: Results end up in logs and output files.
func (c *Client) redact(r Result) Result {
	key := c.cfg.APIKey
	if len(key) < minRedactLen {
		return r
	}
	const mark = "[REDACTED]"
	r.Code = strings.ReplaceAll(r.Code, key, mark)
	r.Message = strings.ReplaceAll(r.Message, key, mark)
	if r.Err != nil && strings.Contains(r.Err.Error(), key) {
		r.Err = &redactedError{msg: strings.ReplaceAll(r.Err.Error(), key, mark), err: r.Err}
	}
	if r.BodyErr != nil && strings.Contains(r.BodyErr.Error(), key) {
		r.BodyErr = &redactedError{msg: strings.ReplaceAll(r.BodyErr.Error(), key, mark), err: r.BodyErr}
	}
	return r
}

// redactedError shows a cleaned message and keeps the cause for errors.Is.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
