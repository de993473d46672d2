// Command benchfill measures the Redis memory of the capability memory at
// scale (scripts/bench-memory.sh, its 10M stage): on a fresh Redis it
// remembers NUMBERS distinct numbers through capstore.Remember, the
// product's own write path (batches pipelined from several connections, a
// share of them rejections with a few reasons), and prints INFO memory's
// used_memory before and after, per remembered number.
//
//	go run ./capstore/internal/benchfill -redis redis://127.0.0.1:6390/0 -numbers 10000000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/capstore"
)

func main() {
	url := flag.String("redis", "redis://127.0.0.1:6379/0", "Redis URL (a fresh server: the figure is its used_memory's growth)")
	numbers := flag.Int("numbers", 10_000_000, "distinct numbers to remember")
	first := flag.Int("first", 0, "the first number's index: a second run from -first N adds numbers to a memory of N (with appendonly, INFO persistence's AOF growth per insert)")
	batch := flag.Int("batch", 5_000, "answers per Remember")
	conns := flag.Int("conns", 4, "Remember calls in flight")
	rejected := flag.Float64("rejected", 0.01, "share of the answers that are the API's rejections")
	flag.Parse()
	if err := run(context.Background(), *url, *first, *numbers, *batch, *conns, *rejected); err != nil {
		fmt.Fprintln(os.Stderr, "benchfill:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, url string, first, numbers, batch, conns int, rejected float64) error {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	opt.PoolSize = conns + 1
	opt.ReadTimeout = time.Minute // a loaded host runs a big script slowly
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	before, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	aofBefore, err := aofSize(ctx, rdb)
	if err != nil {
		return err
	}
	caps := capstore.New(rdb, capstore.Options{})
	start := time.Now()
	if err := fill(ctx, caps, first, numbers, batch, conns, rejected); err != nil {
		return err
	}
	took := time.Since(start)
	after, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	keys, err := rdb.DBSize(ctx).Result()
	if err != nil {
		return err
	}
	enc, err := encodings(ctx, rdb)
	if err != nil {
		return err
	}
	fmt.Printf("remembered %d numbers in %.1fs (%.0f/s), %d keys, bucket encodings %s\n",
		numbers, took.Seconds(), float64(numbers)/took.Seconds(), keys, enc)
	fmt.Printf("used_memory %d before, %d after: +%.1f MB, %.1f bytes per remembered number\n",
		before, after, float64(after-before)/(1<<20), float64(after-before)/float64(numbers))
	if aofBefore >= 0 {
		aofAfter, err := aofSize(ctx, rdb)
		if err != nil {
			return err
		}
		fmt.Printf("AOF %d bytes before, %d after: %.1f bytes per remembered number\n",
			aofBefore, aofAfter, float64(aofAfter-aofBefore)/float64(numbers))
	}
	return nil
}

// fill remembers numbers distinct Indian mobile numbers (91 then 6..9 and
// nine digits, in a scrambled order) answered within the last day.
func fill(ctx context.Context, caps *capstore.Store, first, numbers, batch, conns int, rejected float64) error {
	at := time.Now().Add(-time.Hour)
	reasons := []capstore.Answer{{Code: "RBC529", Message: "invalid number"}, {Code: "RBC530", Message: "landline"}, {Code: "RBC531", Message: "barred"}}
	sem := make(chan struct{}, conns)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	done := 0
	for lo := first; lo < first+numbers; lo += batch {
		hi := min(lo+batch, first+numbers)
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ans := make([]capstore.Answer, 0, hi-lo)
			for i := lo; i < hi; i++ {
				// i -> i*c mod 4e9 is a bijection (c is prime to 10).
				a := capstore.Answer{Number: 916_000_000_000 + uint64(i)*2_654_435_761%4_000_000_000, Capability: capstore.Capable, At: at}
				switch u := float64(uint64(i)*0x9e3779b97f4a7c15>>11) / (1 << 53); {
				case u < rejected:
					r := reasons[i%len(reasons)]
					a.Capability, a.Code, a.Message = capstore.Rejected, r.Code, r.Message
				case u < 0.6:
					a.Capability = capstore.NotCapable
				}
				ans = append(ans, a)
			}
			err := caps.Remember(ctx, ans)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if done += len(ans); done%1_000_000 < batch {
				fmt.Fprintf(os.Stderr, "benchfill: %d remembered\n", done)
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// encodings counts the encodings of a sample of buckets (strings: raw,
// embstr for a bucket of at most 44 bytes) and their mean length.
func encodings(ctx context.Context, rdb *redis.Client) (string, error) {
	count := map[string]int{}
	var size, n int64
	for tag := range 64 {
		for sub := range 2 {
			key := "capcheck:m:{" + strconv.Itoa(tag*16) + "}:" + strconv.Itoa(sub*8)
			enc, err := rdb.ObjectEncoding(ctx, key).Result()
			if err == redis.Nil {
				continue
			}
			if err != nil {
				return "", err
			}
			count[enc]++
			size += rdb.StrLen(ctx, key).Val()
			n++
		}
	}
	return fmt.Sprintf("%v, %d bytes on average", count, size/max(n, 1)), nil
}

// usedMemory is INFO memory's used_memory.
func usedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.InfoMap(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(info["Memory"]["used_memory"], 10, 64)
}

// aofSize is INFO persistence's aof_current_size, -1 when the AOF is off.
func aofSize(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.InfoMap(ctx, "persistence").Result()
	if err != nil {
		return 0, err
	}
	p := info["Persistence"]
	if p["aof_enabled"] != "1" {
		return -1, nil
	}
	return strconv.ParseInt(p["aof_current_size"], 10, 64)
}
