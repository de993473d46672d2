// Command benchenqueue runs enqueue.Run once against a Redis and prints what
// the enqueue benchmark reports: rows/s, peak RSS, and the Redis memory each
// enqueued number takes. scripts/bench-enqueue.sh drives it, and
// scripts/bench-memory.sh with the capability memory: -remember F first
// makes the memory hold an answer of an hour ago for a fraction F of the
// list's numbers (untimed), -memory has the enqueue read it, and
// -recheck-after D not send what it answered within D.
//
//	go run ./enqueue/internal/benchenqueue -input list.csv -redis redis://127.0.0.1:6390/0
//	go run ./enqueue/internal/benchenqueue -input list.csv -remember 0.9 -memory -recheck-after 24h
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/enqueue"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/listreader"
	"github.com/capcheck/capcheck/phonenorm"
)

func main() {
	input := flag.String("input", "", "list to enqueue")
	url := flag.String("redis", "redis://127.0.0.1:6379/0", "Redis URL")
	job := flag.String("job", "", "job ID (default: derived)")
	chunk := flag.Int("chunk-size", enqueue.ChunkSizeDefault, "numbers per chunk")
	out := flag.String("out", os.TempDir(), "output folder")
	flag.Float64Var(&remember, "remember", 0, "first remember an answer for this fraction of the list's numbers")
	flag.BoolVar(&useMemory, "memory", false, "read the capability memory")
	flag.DurationVar(&recheckAfter, "recheck-after", 0, "do not send a number answered within this duration")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the enqueue (not of -remember) to this file")
	flag.StringVar(&traceFile, "trace", "", "write an execution trace of the enqueue (not of -remember) to this file")
	flag.IntVar(&workers, "workers", 0, "normalizing goroutines (default: GOMAXPROCS)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *input, *url, *job, *chunk, *out); err != nil {
		fmt.Fprintln(os.Stderr, "benchenqueue:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

var (
	remember     float64
	useMemory    bool
	recheckAfter time.Duration
	cpuProfile   string
	traceFile    string
	workers      int
)

func run(ctx context.Context, input, url, job string, chunk int, out string) error {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	caps := capstore.New(rdb, capstore.Options{})
	if remember > 0 {
		if err := rememberList(ctx, caps, input, remember); err != nil {
			return err
		}
	}
	// The enqueue starts as a process of its own would: not with the
	// garbage of -remember's filling to sweep and collect.
	runtime.GC()
	before, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	cpu0, err := redisCPU(ctx, rdb)
	if err != nil {
		return err
	}
	closeProfile, err := record(cpuProfile, pprof.StartCPUProfile)
	if err != nil {
		return err
	}
	defer closeProfile()
	closeTrace, err := record(traceFile, trace.Start)
	if err != nil {
		return err
	}
	defer closeTrace()
	client0 := clientCPU()
	cfg := enqueue.Config{
		Input: input, JobID: job, ChunkSize: chunk, OutDir: out, Workers: workers,
		Store: jobstore.New(rdb), Client: asynq.NewClientFromRedisClient(rdb),
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Progress: os.Stderr,
	}
	if useMemory {
		cfg.Memory, cfg.RecheckAfter = caps.Snapshot(), recheckAfter
	}
	res, err := enqueue.Run(ctx, cfg)
	if err != nil {
		return err
	}
	client := clientCPU() - client0
	pprof.StopCPUProfile()
	trace.Stop()
	cpu1, err := redisCPU(ctx, rdb)
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
	fmt.Printf("rows %d, valid %d, duplicates %d, invalid %d, missing %d, malformed %d, chunks %d, cached %d\n",
		c.Rows, c.Valid, c.Duplicates, c.Invalid, c.Missing, c.Malformed, c.Chunks, c.Cached)
	fmt.Printf("elapsed %.2fs, %.0f rows/s\n", secs, float64(c.Rows)/secs)
	// The CPU of the enqueue alone (not of -remember): this process's
	// user+sys, and Redis's from INFO cpu.
	fmt.Printf("client CPU %.2fs, redis CPU %.2fs\n", client.Seconds(), cpu1-cpu0)
	fmt.Printf("peak RSS %.1f MB (getrusage)\n", float64(ru.Maxrss)/1024) // KiB on Linux
	if c.Valid > 0 {
		fmt.Printf("redis used_memory +%.1f MB, %.1f bytes per enqueued number\n",
			float64(after-before)/(1<<20), float64(after-before)/float64(c.Valid))
	}
	return nil
}

// rememberList makes the memory hold a capable answer of an hour ago for a
// fraction of the list's valid numbers (the same ones on every run).
func rememberList(ctx context.Context, caps *capstore.Store, input string, fraction float64) error {
	f, err := os.Open(input)
	if err != nil {
		return err
	}
	defer f.Close()
	rd, err := listreader.New(f, listreader.Config{DefaultRegion: phonenorm.DefaultRegionDefault})
	if err != nil {
		return err
	}
	at := time.Now().Add(-time.Hour)
	var batch []capstore.Answer
	n := 0
	for {
		r, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		k := phonenorm.Normalize(r.Input, phonenorm.DefaultRegionDefault).Key
		if k == 0 || float64(k*0x9e3779b97f4a7c15>>11)/(1<<53) >= fraction {
			continue
		}
		batch = append(batch, capstore.Answer{Number: k, Capability: capstore.Capable, At: at})
		if len(batch) == 10_000 {
			if err := caps.Remember(ctx, batch); err != nil {
				return err
			}
			n += len(batch)
			batch = batch[:0]
		}
	}
	n += len(batch)
	if err := caps.Remember(ctx, batch); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "remembered %d numbers\n", n)
	return nil
}

// clientCPU is the user+sys CPU this process has used.
func clientCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the user+sys CPU seconds of the Redis server (INFO cpu).
func redisCPU(ctx context.Context, rdb *redis.Client) (float64, error) {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	var s float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, err
			}
			s += f
		}
	}
	return s, nil
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

// record starts a profile or trace of the enqueue into a new file at path
// (nothing when path is empty), and returns what closes the file.
func record(path string, start func(io.Writer) error) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
