package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/embedded"
	"github.com/capcheck/capcheck/memfile"
	"github.com/capcheck/capcheck/outfiles"
	"github.com/capcheck/capcheck/phonenorm"
)

const flagAll = "all"

func memoryCommand() *cli.Command {
	shared := func() []cli.Flag { return slices.Concat(configs.SharedFlags(), configs.ForgetFlags()) }
	return &cli.Command{
		Name:  "memory",
		Usage: "inspect, export or forget the capability memory (every answer remembered per number)",
		Description: "The memory holds, per E.164 number, the newest capability (from the provider's\n" +
			"callbacks) or API rejection and when it came, across jobs, in Redis; answers older\n" +
			"than --forget-after are ignored and swept daily by a worker. With no Redis\n" +
			"configured (no --redis, CAPCHECK_REDIS or redis: in the config file), as 'capcheck\n" +
			"run' on its embedded Redis, it is the file {out}/" + memoryFileName + " that such\n" +
			"runs keep (forget and sweep are refused while such a run works in --out).\n" +
			"docs/operations.md shows how to operate it.",
		Subcommands: []*cli.Command{
			{
				Name:   "stats",
				Usage:  "numbers remembered, by capability and age, and the bytes they take in Redis (or the file)",
				Flags:  slices.Concat(shared(), []cli.Flag{&cli.BoolFlag{Name: flagJSON, Usage: "print JSON"}}),
				Action: memoryStatsAction,
			},
			{
				Name:   "export",
				Usage:  "write every remembered answer to standard output: number,capability,at,code,message",
				Flags:  slices.Concat(shared(), []cli.Flag{formatFlag("csv or jsonl")}),
				Action: memoryExportAction,
			},
			{
				Name:      "forget",
				Usage:     "forget the answers of numbers (E.164 or as in a list), or of every number with --all",
				ArgsUsage: "NUMBER... | --all",
				Flags: slices.Concat(shared(), configs.DefaultRegionFlag(), []cli.Flag{
					&cli.BoolFlag{Name: flagAll, Usage: "forget every number (e.g. after a provider incident)"},
				}),
				Action: memoryForgetAction,
			},
			{
				Name:   "sweep",
				Usage:  "drop the answers older than --forget-after now (enqueue does it once a day)",
				Flags:  shared(),
				Action: memorySweepAction,
			},
		},
	}
}

// memoryStats are the counts memory stats prints.
type memoryStats struct {
	Numbers      int64            `json:"numbers"`
	ByCapability map[string]int64 `json:"by_capability"`
	ByAge        map[string]int64 `json:"by_age"`
	// Stale are older than --forget-after: ignored, dropped by the next sweep.
	Stale int64 `json:"stale"`
	// Bytes is MEMORY USAGE of the memory's keys, or the file's size; -1
	// when Redis cannot say.
	Bytes          int64   `json:"bytes"`
	BytesPerNumber float64 `json:"bytes_per_number"`
	// File is the memory's file of runs on the embedded Redis; empty for
	// Redis.
	File string `json:"file,omitempty"`
}

// memoryFileName is the memory's file under --out, for help texts.
var memoryFileName = filepath.Base(embedded.MemoryPath(""))

// memorySource is the memory that stats and export read: the fleet's in
// Redis or, with no Redis configured (as run decides), the file that runs
// on the embedded Redis keep under --out.
type memorySource struct {
	cfg     *configs.Config
	log     *slog.Logger
	file    string // the file; empty for Redis
	each    func(fn func(uint64, capstore.Record) error) error
	reasons func() (map[uint16]capstore.Reason, error)
	bytes   func() (int64, error)
	close   func()
}

func openMemorySource(c *cli.Context) (*memorySource, error) {
	cfg, err := loadConfig(c, configs.Needs{})
	if err != nil {
		return nil, err
	}
	if !cfg.RedisExplicit {
		m, err := embedded.OpenMemory(cfg.Out)
		if err != nil {
			return nil, outError(err, cfg.Out)
		}
		return &memorySource{
			cfg: cfg, log: newLogger(cfg, c.App.ErrWriter), file: embedded.MemoryPath(cfg.Out),
			each:    m.Each,
			reasons: func() (map[uint16]capstore.Reason, error) { return m.Reasons(), nil },
			bytes:   func() (int64, error) { return m.Size(), nil },
			close:   func() { m.Close() },
		}, nil
	}
	s, err := connectSession(c, cfg)
	if err != nil {
		return nil, err
	}
	mem := capstore.New(s.rdb, capstore.Options{})
	return &memorySource{
		cfg: cfg, log: s.log,
		each:    func(fn func(uint64, capstore.Record) error) error { return mem.Each(c.Context, fn) },
		reasons: func() (map[uint16]capstore.Reason, error) { return mem.Reasons(c.Context) },
		bytes:   func() (int64, error) { return mem.Bytes(c.Context) },
		close:   s.Close,
	}, nil
}

// ageBins are the age classes of memory stats, youngest first.
var ageBins = []struct {
	name string
	max  time.Duration
}{
	{"1d", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour},
	{"90d", 90 * 24 * time.Hour}, {"older", 1<<63 - 1},
}

func memoryStatsAction(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	s, err := openMemorySource(c)
	if err != nil {
		return err
	}
	defer s.close()
	now := time.Now()
	st := memoryStats{ByCapability: map[string]int64{}, ByAge: map[string]int64{}, File: s.file}
	err = s.each(func(_ uint64, r capstore.Record) error {
		st.Numbers++
		st.ByCapability[r.Capability.String()]++
		age := now.Sub(r.At)
		for _, b := range ageBins {
			if age < b.max {
				st.ByAge[b.name]++
				break
			}
		}
		if r.Stale(now, s.cfg.Memory.ForgetAfter) {
			st.Stale++
		}
		return nil
	})
	if err != nil {
		return err
	}
	st.Bytes = -1
	if b, err := s.bytes(); err == nil {
		st.Bytes = b
		if st.Numbers > 0 {
			st.BytesPerNumber = float64(b) / float64(st.Numbers)
		}
	} else {
		s.log.Warn("Redis cannot measure the memory's bytes", "err", err)
	}
	return printMemoryStats(c.App.Writer, st, c.Bool(flagJSON))
}

func printMemoryStats(w io.Writer, st memoryStats, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(w, "numbers remembered: %d (%d older than --forget-after, ignored)\n", st.Numbers, st.Stale)
	fmt.Fprint(w, "by capability:")
	for _, k := range []capstore.Capability{capstore.Capable, capstore.NotCapable, capstore.Unknown, capstore.Rejected} {
		fmt.Fprintf(w, " %s %d", k, st.ByCapability[k.String()])
	}
	fmt.Fprint(w, "\nby age:")
	for _, b := range ageBins {
		label := "< " + b.name
		if b.name == "older" {
			label = ">= 90d"
		}
		fmt.Fprintf(w, " %s %d", label, st.ByAge[b.name])
	}
	switch {
	case st.File != "":
		fmt.Fprintf(w, "\nbytes in %s: %d (%.1f per number)\n", st.File, st.Bytes, st.BytesPerNumber)
	case st.Bytes >= 0:
		fmt.Fprintf(w, "\nbytes in Redis: %d (%.1f per number)\n", st.Bytes, st.BytesPerNumber)
	default:
		fmt.Fprint(w, "\nbytes in Redis: unknown (no MEMORY USAGE)\n")
	}
	return nil
}

// memoryRow is one remembered answer as memory export writes it.
type memoryRow struct {
	Number     string `json:"number"`
	Capability string `json:"capability"`
	At         string `json:"at"`
	Code       string `json:"code,omitempty"`
	Message    string `json:"message,omitempty"`
}

func memoryExportAction(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	format := outfiles.Format(c.String(flagFormat))
	s, err := openMemorySource(c)
	if err != nil {
		return err
	}
	defer s.close()
	reasons, err := s.reasons()
	if err != nil {
		return err
	}
	now := time.Now()
	w := bufio.NewWriter(c.App.Writer)
	write, flush := memoryRowWriter(w, format)
	var n int64
	err = s.each(func(num uint64, r capstore.Record) error {
		if r.Stale(now, s.cfg.Memory.ForgetAfter) {
			return nil
		}
		row := memoryRow{Number: capstore.Digits(num), Capability: r.Capability.String(), At: r.At.UTC().Format(time.RFC3339)}
		if r.Capability == capstore.Rejected {
			row.Code, row.Message = reasons[r.Reason].Code, reasons[r.Reason].Message
		}
		n++
		return write(row)
	})
	if err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	s.log.Info("exported the memory", "numbers", n)
	return nil
}

// memoryRowWriter returns the writer of rows in format, and its flush.
func memoryRowWriter(w *bufio.Writer, format outfiles.Format) (write func(memoryRow) error, flush func() error) {
	if format == outfiles.JSONL {
		enc := json.NewEncoder(w)
		return func(r memoryRow) error { return enc.Encode(r) }, w.Flush
	}
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"number", "capability", "at", "code", "message"}) // errors surface at flush
	return func(r memoryRow) error {
			return cw.Write([]string{r.Number, r.Capability, r.At, outfiles.Cell(r.Code), outfiles.Cell(r.Message)})
		}, func() error {
			cw.Flush()
			if err := cw.Error(); err != nil {
				return err
			}
			return w.Flush()
		}
}

func memoryForgetAction(c *cli.Context) error {
	all := c.Bool(flagAll)
	if all == (c.NArg() > 0) {
		return usageErrorf("give the numbers to forget, or --all to forget every number")
	}
	cfg, err := loadConfig(c, configs.Needs{})
	if err != nil {
		return err
	}
	if all && !cfg.RedisExplicit {
		n, err := embedded.ForgetMemory(cfg.Out)
		if err != nil {
			return outError(err, cfg.Out)
		}
		fmt.Fprintf(c.App.Writer, "forgot %d numbers\n", n)
		return nil
	}
	nums := make([]uint64, 0, c.NArg())
	for _, a := range c.Args().Slice() {
		r := phonenorm.Normalize(a, cfg.Enqueue.DefaultRegion)
		if !r.Valid() {
			return usageErrorf("%s is not a valid phone number (write it in E.164, e.g. +919876543210)", shownArg(c, a))
		}
		nums = append(nums, r.Key)
	}
	if !cfg.RedisExplicit {
		st, err := embedded.EditMemory(cfg.Out, memfile.MergeOptions{Forget: nums})
		if err != nil {
			return outError(err, cfg.Out)
		}
		fmt.Fprintf(c.App.Writer, "forgot %d of %d numbers (the others were not remembered)\n", st.Forgotten, len(nums))
		return nil
	}
	s, err := connectSession(c, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	mem := capstore.New(s.rdb, capstore.Options{})
	if all {
		n, err := mem.ForgetAll(c.Context)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "forgot %d numbers\n", n)
		return nil
	}
	n, err := mem.Forget(c.Context, nums)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "forgot %d of %d numbers (the others were not remembered)\n", n, len(nums))
	return nil
}

func memorySweepAction(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, err := loadConfig(c, configs.Needs{})
	if err != nil {
		return err
	}
	fa := cfg.Memory.ForgetAfter
	if fa == 0 && !cfg.RedisExplicit {
		fmt.Fprintln(c.App.Writer, "--forget-after is 0: the memory keeps every answer, nothing to sweep")
		return nil
	}
	var n int64
	if cfg.RedisExplicit {
		s, err := connectSession(c, cfg)
		if err != nil {
			return err
		}
		defer s.Close()
		// With --forget-after 0 the sweep drops nothing, but still moves
		// the buckets of the memory's earlier layout (hashes) into strings.
		var before time.Time
		if fa > 0 {
			before = time.Now().Add(-fa)
		}
		var moved int64
		if n, moved, err = capstore.New(s.rdb, capstore.Options{}).Sweep(c.Context, before); err != nil {
			return err
		}
		if moved > 0 {
			fmt.Fprintf(c.App.Writer, "moved %d keys of the layouts before into the current buckets\n", moved)
		}
		if fa == 0 {
			fmt.Fprintln(c.App.Writer, "--forget-after is 0: the memory keeps every answer, nothing dropped")
			return nil
		}
	} else {
		st, err := embedded.EditMemory(cfg.Out, memfile.MergeOptions{Now: time.Now(), ForgetAfter: fa})
		if err != nil {
			return outError(err, cfg.Out)
		}
		n = int64(st.Expired)
	}
	fmt.Fprintf(c.App.Writer, "dropped %s answers older than %s\n", strconv.FormatInt(n, 10), fa)
	return nil
}
