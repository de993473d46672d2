package capapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The client's own connections (no proxy, no Config.HTTPClient) carry a
// request directly, in the caller's goroutine: the request is written in one
// write, the answer read and parsed by http.ReadResponse, and the connection
// goes back to a pool of idle ones. net/http's Transport hands every request
// to a writing and a reading goroutine of its connection: three goroutines
// woken per call instead of one, which a worker at hundreds of calls a second
// pays for in CPU (about a third of the call's).

// idleConnMax is how long a connection waits unused in the pool before it is
// closed, as http.DefaultTransport's IdleConnTimeout.
const idleConnMax = 90 * time.Second

// aliveCheckAfter is how long a connection is idle before it is checked,
// when taken from the pool, for a close by the server (which net/http's
// reading goroutine would have seen at once): a request written on a closed
// connection usually reaches the kernel and fails only at the read, and a
// POST is not sent again then. The check is one non-blocking peek, cheap
// next to the call; only a connection back this instant skips it.
const aliveCheckAfter = time.Millisecond

// readBufSize is the read buffer of a pooled connection: an answer's head
// and body fit in it.
const readBufSize = 4 << 10

// directPool holds the idle connections of a client and bounds how many are
// open at once (Config.MaxConns, as the Transport's MaxConnsPerHost).
type directPool struct {
	d     *dialer
	addr  string
	slots chan struct{} // a place per connection in use

	mu   sync.Mutex
	idle []*pooledConn
}

// pooledConn is a connection with its read buffer.
type pooledConn struct {
	c      *gatedConn
	br     *bufio.Reader
	idleAt time.Time
	reused bool
}

func newDirectPool(d *dialer, addr string, maxConns int) *directPool {
	return &directPool{d: d, addr: addr, slots: make(chan struct{}, maxConns)}
}

// get returns an idle connection, or a new one (from Warm's stash, or
// dialed), once fewer than MaxConns are in use.
func (p *directPool) get(ctx context.Context) (*pooledConn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	for len(p.idle) > 0 {
		pc := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if idle := time.Since(pc.idleAt); idle < idleConnMax && (idle < aliveCheckAfter || alive(pc.c.sock)) {
			p.mu.Unlock()
			pc.reused = true
			return pc, nil
		}
		pc.c.Close()
	}
	p.mu.Unlock()
	c, err := p.d.dial(ctx, "tcp", p.addr)
	if err != nil {
		<-p.slots
		return nil, err
	}
	return &pooledConn{c: c.(*gatedConn), br: bufio.NewReaderSize(c, readBufSize)}, nil
}

// put returns pc to the pool, or closes it when it cannot carry another
// request.
func (p *directPool) put(pc *pooledConn, reusable bool) {
	defer func() { <-p.slots }()
	if !reusable {
		pc.c.Close()
		return
	}
	pc.idleAt = time.Now()
	p.mu.Lock()
	p.idle = append(p.idle, pc)
	p.mu.Unlock()
}

// closeIdle closes the idle connections.
func (p *directPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, pc := range idle {
		pc.c.Close()
	}
}

// aLongTimeAgo is a deadline that ends a read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// head is the request's head up to its Content-Length value.
func (c *Client) head() string {
	u := c.url
	return "POST " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUser-Agent: capcheck\r\nAccept: application/json\r\nContent-Type: application/json\r\nApi-Key: " +
		c.cfg.APIKey + "\r\nContent-Length: "
}

// direct sends the request of body on a pooled connection under rctx (its
// deadline and cancellation end the exchange), g's Ready right before its
// first byte is written, and returns the answer with its body read.
func (c *Client) direct(rctx context.Context, g SendGate, body []byte) (*http.Response, []byte, error) {
	req := make([]byte, 0, len(c.reqHead)+24+len(body))
	req = append(req, c.reqHead...)
	req = strconv.AppendInt(req, int64(len(body)), 10)
	req = append(req, "\r\n\r\n"...)
	req = append(req, body...)
	for try := 0; ; try++ {
		pc, err := c.pool.get(rctx)
		if err != nil {
			return nil, nil, err
		}
		resp, data, reusable, err := c.exchange(rctx, pc, g, req)
		c.pool.put(pc, reusable && err == nil)
		var nw nothingWritten
		if errors.As(err, &nw) && pc.reused && try == 0 {
			// A connection the server had closed while it was idle: the
			// request went nowhere; another connection takes it (its gate
			// runs again), as net/http does.
			continue
		}
		if errors.As(err, &nw) {
			err = nw.err
		}
		return resp, data, err
	}
}

// nothingWritten is a write that failed before any byte of the request
// left, the gate having let it go.
type nothingWritten struct{ err error }

func (e nothingWritten) Error() string { return e.err.Error() }
func (e nothingWritten) Unwrap() error { return e.err }

// exchange writes req on pc and reads the answer, and reports whether pc
// can carry another request.
func (c *Client) exchange(rctx context.Context, pc *pooledConn, g SendGate, req []byte) (*http.Response, []byte, bool, error) {
	dl, _ := rctx.Deadline()
	if err := pc.c.SetDeadline(dl); err != nil {
		return nil, nil, false, err
	}
	stop := context.AfterFunc(rctx, func() { _ = pc.c.SetDeadline(aLongTimeAgo) })
	defer stop()
	if g != nil {
		pc.c.arm(rctx, g)
	}
	if n, err := pc.c.Write(req); err != nil {
		if n == 0 && !errors.Is(err, ErrNotSent) {
			err = nothingWritten{err}
		}
		return nil, nil, false, err
	}
	resp, err := http.ReadResponse(pc.br, nil)
	// An interim answer (1xx) precedes the final one.
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(pc.br, nil)
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, nil, false, err
	}
	// The body is read to its end (a longer one than maxBodyBytes is not
	// an answer of the API's, and its connection is closed).
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	resp.Body.Close()
	if err != nil {
		return resp, nil, false, err
	}
	if len(data) > maxBodyBytes {
		return resp, nil, false, errBodyTooLarge
	}
	// A body that runs to the close of the connection leaves nothing to
	// reuse; one whose context ended may have had its deadline cut. Bytes
	// read past the answer are no answer to the next request: as net/http,
	// such a connection is closed.
	framed := resp.ContentLength >= 0 || (len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked")
	return resp, data, framed && !resp.Close && pc.br.Buffered() == 0 && stop(), nil
}
