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
// It prints callbacks/s, p50/p99/max latency and Redis bytes per awaited
// number (INFO memory, before registering and after ingesting).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns}}
	send := func(i int) (int, error) { return post(client, *url, *token, number(i)) }

	fast := *numbers - *paced
	start := time.Now()
	errs := runFast(send, fast, *conns)
	el := time.Since(start)
	fmt.Printf("throughput   %d callbacks in %.2f s: %.0f callbacks/s (%d connections, %d errors)\n",
		fast, el.Seconds(), float64(fast)/el.Seconds(), *conns, errs)

	lat, errs := runPaced(send, fast, *paced, *rate, *conns)
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Printf("latency      at %.0f/s: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d requests, %d errors)\n",
		*rate, ms(q(0.5)), ms(q(0.99)), ms(lat[len(lat)-1]), len(lat), errs)
	after := usedMemory(ctx, rdb)
	fmt.Printf("redis        %.1f bytes per awaited number (records, awaiting entries, job bitmaps)\n",
		float64(after-before)/float64(*numbers))
}

func number(i int) string { return "9198" + fmt.Sprintf("%08d", i) }

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

func post(c *http.Client, url, token, num string) (int, error) {
	body := `{"number":"` + num + `","status":"capable"}`
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// runFast sends numbers [0, n) from conns goroutines; a request answered
// 503 is sent again, as a provider would.
func runFast(send func(int) (int, error), n, conns int) int64 {
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				for {
					code, err := send(i)
					if err == nil && code == 200 {
						break
					}
					errs.Add(1)
					if err != nil && !strings.Contains(err.Error(), "reset") {
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
func runPaced(send func(int) (int, error), from, n int, rate float64, conns int) ([]time.Duration, int64) {
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
			for j := range ch {
				code, err := send(j.i)
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
