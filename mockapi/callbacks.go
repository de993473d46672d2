package mockapi

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Capable reports what the simulator says of a number: with d the integer
// of its digits (a leading '+' ignored), it is capable when
// splitmix64(d) / 2^64 < fraction, splitmix64 being the SplitMix64
// finalizer (x ^= x>>30; x *= 0xbf58476d1ce4e5b9; x ^= x>>27;
// x *= 0x94d049bb133111eb; x ^= x>>31). So a fraction of 0.3 makes about 30%
// of numbers capable, always the same ones (a number capable at 0.3 is
// capable at any larger fraction), and a test can tell every number's
// answer. A number that is not all digits is not capable.
func Capable(number string, fraction float64) bool {
	d, ok := digits(number)
	return ok && unit(splitmix64(d)) < fraction
}

// Flipped reports whether the simulator's answer for a number is flipped
// (Config.FlipFraction): with d the integer of its digits, when
// splitmix64(d ^ 0x9e3779b97f4a7c15) / 2^64 < fraction. It does not depend
// on Capable's fraction, so a test knows exactly which numbers changed
// between a simulator without flips and one with them; a number flipped at
// 0.01 is flipped at any larger fraction. A number that is not all digits
// is never flipped.
func Flipped(number string, fraction float64) bool {
	d, ok := digits(number)
	return ok && unit(splitmix64(d^flipSalt)) < fraction
}

// CapableAfterFlips is the simulator's answer for a number: Capable at
// capable, the other way round when Flipped at flip.
func CapableAfterFlips(number string, capable, flip float64) bool {
	return Capable(number, capable) != Flipped(number, flip)
}

const flipSalt = 0x9e3779b97f4a7c15

func digits(number string) (uint64, bool) {
	d, err := strconv.ParseUint(strings.TrimPrefix(number, "+"), 10, 64)
	return d, err == nil
}

func splitmix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func unit(x uint64) float64 { return float64(x) / math.Exp2(64) }

// Status values the simulator's callbacks carry (capcheck's defaults read
// them).
const (
	StatusCapable    = "capable"
	StatusNotCapable = "not_capable"
)

// CapabilityStatus is the status value of number's callback from a
// simulator without flips: StatusCapable or StatusNotCapable, as Capable
// says.
func CapabilityStatus(number string, fraction float64) string {
	return statusOf(Capable(number, fraction))
}

func statusOf(capable bool) string {
	if capable {
		return StatusCapable
	}
	return StatusNotCapable
}

// Callback retries: a refused delivery is tried again after a backoff that
// doubles from callbackBackoffMin to callbackBackoffMax, with jitter, until
// the server is closed (providers retry for hours).
const (
	callbackBackoffMin = 50 * time.Millisecond
	callbackBackoffMax = 2 * time.Second
	callbackSenders    = 32
	callbackTimeout    = 10 * time.Second
)

// delivery is one callback to send.
type delivery struct {
	at       time.Time
	number   string
	status   string
	attempt  int
	badToken bool
}

type deliveries []*delivery

func (d deliveries) Len() int           { return len(d) }
func (d deliveries) Less(i, j int) bool { return d[i].at.Before(d[j].at) }
func (d deliveries) Swap(i, j int)      { d[i], d[j] = d[j], d[i] }
func (d *deliveries) Push(x any)        { *d = append(*d, x.(*delivery)) }
func (d *deliveries) Pop() any {
	old := *d
	x := old[len(old)-1]
	*d = old[:len(old)-1]
	return x
}

// sender delivers the callbacks of accepted numbers: a scheduler hands due
// deliveries to a pool of senders.
type sender struct {
	cfg    Config
	client *http.Client

	mu   sync.Mutex
	rng  *rand.Rand
	due  deliveries
	wake chan struct{}

	work chan *delivery
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	sent, delivered, retries, pending atomic.Int64
}

func newSender(cfg Config, seed uint64) *sender {
	s := &sender{
		cfg:    cfg,
		client: &http.Client{Timeout: callbackTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: callbackSenders}},
		rng:    rand.New(rand.NewPCG(seed^0x5bd1e995, seed)),
		wake:   make(chan struct{}, 1),
		work:   make(chan *delivery),
		quit:   make(chan struct{}),
	}
	s.wg.Go(s.schedule)
	for range callbackSenders {
		s.wg.Go(s.sendLoop)
	}
	return s
}

func (s *sender) close() {
	s.once.Do(func() { close(s.quit) })
	s.wg.Wait()
	s.client.CloseIdleConnections()
}

// accepted schedules the callbacks of an accepted request's numbers.
func (s *sender) accepted(numbers []string) {
	now := time.Now()
	s.mu.Lock()
	for _, n := range numbers {
		copies := 1
		if s.rng.Float64() < s.cfg.CallbackDuplicateRate {
			copies = 2
		}
		for range copies {
			d := &delivery{at: now.Add(s.cfg.CallbackDelay + s.jitter()), number: n,
				status: statusOf(CapableAfterFlips(n, s.cfg.CapableFraction, s.cfg.FlipFraction)), badToken: s.rng.Float64() < s.cfg.CallbackRefuseRate}
			heap.Push(&s.due, d)
			s.pending.Add(1)
		}
	}
	s.mu.Unlock()
	s.poke()
}

// jitter is a random delay in [0, CallbackJitter]; s.mu held.
func (s *sender) jitter() time.Duration {
	if s.cfg.CallbackJitter <= 0 {
		return 0
	}
	return time.Duration(s.rng.Int64N(int64(s.cfg.CallbackJitter) + 1))
}

func (s *sender) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sender) schedule() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		var next *delivery
		wait := time.Hour
		if len(s.due) > 0 {
			if d := time.Until(s.due[0].at); d <= 0 {
				next = heap.Pop(&s.due).(*delivery)
			} else {
				wait = d
			}
		}
		s.mu.Unlock()
		if next != nil {
			select {
			case s.work <- next:
			case <-s.quit:
				return
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-s.wake:
		case <-s.quit:
			return
		}
	}
}

func (s *sender) sendLoop() {
	for {
		select {
		case d := <-s.work:
			s.send(d)
		case <-s.quit:
			return
		}
	}
}

// send delivers d once; a non-2xx answer or an error schedules a retry.
func (s *sender) send(d *delivery) {
	body, _ := json.Marshal(map[string]string{"number": d.number, "status": d.status}) // strings: cannot fail
	ctx, cancel := context.WithTimeout(context.Background(), callbackTimeout)
	defer cancel()
	ok := false
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.CallbackURL, bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		if s.cfg.CallbackToken != "" {
			tok := s.cfg.CallbackToken
			if d.badToken {
				tok = "wrong-" + tok
			}
			req.Header.Set(s.cfg.CallbackHeader, "Bearer "+tok)
		}
		s.sent.Add(1)
		var resp *http.Response
		if resp, err = s.client.Do(req); err == nil {
			ok = resp.StatusCode/100 == 2
			resp.Body.Close()
		}
	}
	if ok {
		s.delivered.Add(1)
		s.pending.Add(-1)
		return
	}
	s.retries.Add(1)
	s.mu.Lock()
	d.attempt++
	d.badToken = false
	backoff := min(callbackBackoffMax, callbackBackoffMin<<min(d.attempt, 10))
	d.at = time.Now().Add(backoff/2 + time.Duration(s.rng.Int64N(int64(backoff/2)+1)))
	heap.Push(&s.due, d)
	s.mu.Unlock()
	s.poke()
}
