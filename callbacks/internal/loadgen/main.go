// Command loadgen measures a running `capcheck callbacks` (make
// bench-callbacks): it registers NUMBERS distinct numbers as awaited by
// jobs in Redis (as workers do after the API's 202), then sends one
// authenticated JSON callback per number, each its own request, over
// keep-alive connections:
//
//  1. throughput: the first part as fast as CONNS connections go;
//  2. latency: the rest paced at RATE requests/s (open loop: a request's
//     latency counts from when it was due, so a stall is not hidden).
//
// It prints callbacks/s, p50/p99/max latency, Redis bytes per awaited
// number (INFO memory, before registering and after ingesting) and Redis's
// CPU per callback while they were sent (INFO cpu).
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	neturl "net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/capstore"
)

func main() {
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	url := flag.String("url", "http://127.0.0.1:8081/callback", "callback URL")
	token := flag.String("token", "", "callback token")
	numbers := flag.Int("numbers", 1_000_000, "distinct numbers")
	jobs := flag.Int("jobs", 10, "jobs awaiting them")
	paced := flag.Int("paced", 200_000, "numbers of the paced (latency) part")
	rate := flag.Float64("rate", 10_000, "requests/s of the paced part")
	conns := flag.Int("conns", 128, "connections")
	flag.Parse()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: *redisAddr, PoolSize: 32})
	before := usedMemory(ctx, rdb)
	register(ctx, capstore.New(rdb, capstore.Options{}), *numbers, *jobs)
	target, err := neturl.Parse(*url)
	if err != nil {
		log.Fatal(err)
	}
	newConn := func() *conn { return &conn{host: target.Host, path: target.RequestURI(), token: *token} }

	cpu0, own0 := redisCPU(ctx, rdb), ownCPU()
	fast := *numbers - *paced
	start := time.Now()
	errs := runFast(newConn, fast, *conns)
	el := time.Since(start)
	fmt.Printf("throughput   %d callbacks in %.2f s: %.0f callbacks/s (%d connections, %d errors)\n",
		fast, el.Seconds(), float64(fast)/el.Seconds(), *conns, errs)

	lat, errs := runPaced(newConn, fast, *paced, *rate, *conns)
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Printf("latency      at %.0f/s: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d requests, %d errors)\n",
		*rate, ms(q(0.5)), ms(q(0.99)), ms(lat[len(lat)-1]), len(lat), errs)
	cpu1, own1 := redisCPU(ctx, rdb), ownCPU()
	after := usedMemory(ctx, rdb)
	fmt.Printf("redis        %.1f bytes per awaited number (records, awaiting entries, job bitmaps); %.1f us of CPU per callback\n",
		float64(after-before)/float64(*numbers), (cpu1-cpu0)/float64(*numbers)*1e6)
	fmt.Printf("loadgen      %.1f us of CPU per callback\n", (own1-own0)/float64(*numbers)*1e6)
}

// ownCPU is the CPU seconds this process has used (user and system).
func ownCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// number is the i-th number: 9198 and 8 digits.
func number(i int) string { return string(appendNumber(nil, i)) }

func appendNumber(b []byte, i int) []byte {
	b = append(b, "9198"...)
	var d [8]byte
	for k := 7; k >= 0; k-- {
		d[k] = byte('0' + i%10)
		i /= 10
	}
	return append(b, d[:]...)
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// register makes jobs await the numbers, as workers do after a 202.
func register(ctx context.Context, st *capstore.Store, n, jobs int) {
	per := (n + jobs - 1) / jobs
	for j := range jobs {
		id := "bench-" + strconv.Itoa(j)
		ord, err := st.RegisterJob(ctx, id)
		if err != nil {
			log.Fatal(err)
		}
		for lo := j * per; lo < min(n, (j+1)*per); lo += 1000 {
			var items []capstore.Awaited
			for i := lo; i < min(n, (j+1)*per, lo+1000); i++ {
				d, _ := strconv.ParseUint(number(i), 10, 64)
				items = append(items, capstore.Awaited{Number: d, Index: uint32(i - j*per)})
			}
			if err := st.Await(ctx, id, ord, items, time.Now()); err != nil {
				log.Fatal(err)
			}
		}
	}
}

// conn is one keep-alive connection to the receiver.
type conn struct {
	host, path, token string
	c                 net.Conn
	r                 *bufio.Reader
	req               []byte
}

// post sends the callback of number i and returns the answer's status.
func (c *conn) post(i int) (int, error) {
	if c.c == nil {
		nc, err := net.Dial("tcp", c.host)
		if err != nil {
			return 0, err
		}
		c.c, c.r = nc, bufio.NewReader(nc)
	}
	body := `{"number":"` + number(i) + `","status":"capable"}`
	c.req = append(c.req[:0], "POST "+c.path+" HTTP/1.1\r\nHost: "+c.host+
		"\r\nAuthorization: Bearer "+c.token+"\r\nContent-Type: application/json\r\nContent-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(body)), 10)
	c.req = append(append(c.req, "\r\n\r\n"...), body...)
	code, keep, err := c.exchange()
	if err != nil || !keep {
		c.c.Close()
		c.c = nil
	}
	return code, err
}

// exchange writes the request and reads the answer: status line, headers,
// a body of Content-Length bytes.
func (c *conn) exchange() (code int, keep bool, err error) {
	if _, err := c.c.Write(c.req); err != nil {
		return 0, false, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	if code, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	length, keep := -1, true
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		h = bytes.TrimSpace(h)
		if len(h) == 0 {
			break
		}
		k, v, _ := bytes.Cut(h, []byte(":"))
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			length, err = strconv.Atoi(string(v))
			if err != nil {
				return 0, false, fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, []byte("Connection")) && bytes.EqualFold(v, []byte("close")):
			keep = false
		}
	}
	if length < 0 {
		return 0, false, errors.New("answer without Content-Length")
	}
	if _, err := c.r.Discard(length); err != nil {
		return 0, false, err
	}
	return code, keep, nil
}

// runFast sends numbers [0, n) from conns goroutines; a request answered
// 503 is sent again, as a provider would.
func runFast(newConn func() *conn, n, conns int) int64 {
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			c := newConn()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				for {
					code, err := c.post(i)
					if err == nil && code == 200 {
						break
					}
					errs.Add(1)
					// A connection the receiver closed is opened again.
					if err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
						log.Fatal(err)
					}
				}
			}
		})
	}
	wg.Wait()
	return errs.Load()
}

// runPaced sends numbers [from, from+n) at rate per second and returns the
// latency of each, counted from when it was due.
func runPaced(newConn func() *conn, from, n int, rate float64, conns int) ([]time.Duration, int64) {
	type job struct {
		i   int
		due time.Time
	}
	ch := make(chan job, conns)
	lat := make([]time.Duration, n)
	var errs atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			c := newConn()
			for j := range ch {
				code, err := c.post(j.i)
				lat[j.i-from] = time.Since(j.due)
				if err != nil || code != 200 {
					errs.Add(1)
				}
			}
		})
	}
	start := time.Now()
	for k := range n {
		due := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		ch <- job{i: from + k, due: due}
	}
	close(ch)
	wg.Wait()
	return lat, errs.Load()
}

// redisCPU is the CPU seconds Redis has used (user and system).
func redisCPU(ctx context.Context, rdb *redis.Client) float64 {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		log.Fatal(err)
	}
	var sum float64
	for l := range strings.SplitSeq(info, "\r\n") {
		for _, k := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(l, k); ok {
				f, _ := strconv.ParseFloat(v, 64)
				sum += f
			}
		}
	}
	return sum
}

func usedMemory(ctx context.Context, rdb *redis.Client) int64 {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		log.Fatal(err)
	}
	for l := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
