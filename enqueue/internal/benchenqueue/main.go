// Command benchenqueue runs enqueue.Run once against a Redis and prints what
// the enqueue benchmark reports: rows/s, peak RSS, and the Redis memory each
// enqueued number takes. scripts/bench-enqueue.sh drives it.
//
//	go run ./enqueue/internal/benchenqueue -input list.csv -redis redis://127.0.0.1:6390/0
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/enqueue"
	"github.com/capcheck/capcheck/jobstore"
)

func main() {
	input := flag.String("input", "", "list to enqueue")
	url := flag.String("redis", "redis://127.0.0.1:6379/0", "Redis URL")
	job := flag.String("job", "", "job ID (default: derived)")
	chunk := flag.Int("chunk-size", enqueue.ChunkSizeDefault, "numbers per chunk")
	out := flag.String("out", os.TempDir(), "output folder")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *input, *url, *job, *chunk, *out); err != nil {
		fmt.Fprintln(os.Stderr, "benchenqueue:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, input, url, job string, chunk int, out string) error {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	before, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	res, err := enqueue.Run(ctx, enqueue.Config{
		Input: input, JobID: job, ChunkSize: chunk, OutDir: out,
		Store: jobstore.New(rdb), Client: asynq.NewClientFromRedisClient(rdb),
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Progress: os.Stderr,
	})
	if err != nil {
		return err
	}
	after, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	c := res.Counts
	secs := res.Elapsed.Seconds()
	fmt.Printf("job %s\n", res.JobID)
	fmt.Printf("rows %d, valid %d, duplicates %d, invalid %d, missing %d, malformed %d, chunks %d\n",
		c.Rows, c.Valid, c.Duplicates, c.Invalid, c.Missing, c.Malformed, c.Chunks)
	fmt.Printf("elapsed %.2fs, %.0f rows/s\n", secs, float64(c.Rows)/secs)
	fmt.Printf("peak RSS %.1f MB (getrusage)\n", float64(ru.Maxrss)/1024) // KiB on Linux
	if c.Valid > 0 {
		fmt.Printf("redis used_memory +%.1f MB, %.1f bytes per enqueued number\n",
			float64(after-before)/(1<<20), float64(after-before)/float64(c.Valid))
	}
	return nil
}

func usedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no used_memory in INFO memory")
}
