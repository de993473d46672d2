package main

import (
	"os"
	"runtime"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/configs"
)

func workerCommand() *cli.Command {
	return &cli.Command{
		Name:  "worker",
		Usage: "process enqueued chunks: call the API under the fleet rate limit, write the output files",
		Description: "A long-running asynq server. Any number of replicas share one Redis, one rate\n" +
			"limit (--rate is for the whole fleet) and the jobs' state: scale by starting more.\n" +
			"It retries transient errors, bisects batches refused for an invalid number, pauses\n" +
			"the fleet on 429, stops a job on 401/402/403, and writes {out}/{job}/ when the job's last\n" +
			"chunk is done. SIGTERM or SIGINT drains: calls in flight finish and are recorded,\n" +
			"the rest goes back to the queue for other replicas, within --shutdown-timeout.\n" +
			"With --metrics-addr it serves Prometheus metrics on /metrics (docs/metrics.md)\n" +
			"and a health check on /healthz.",
		Flags:  slices.Concat(configs.SharedFlags(), configs.APIFlags(), configs.WorkerFlags()),
		Action: sessionAction(configs.Needs{Credentials: true}, workerAction),
	}
}

func workerAction(c *cli.Context, s *session) error {
	oneProc()
	if s.cfg.OutExplicit { // it writes the jobs' files
		if err := checkOut(s.cfg.Out); err != nil {
			return err
		}
	}
	_, stop, err := startWorker(s.cfg, s.rdb, s.store, s.log, !s.cfg.OutExplicit)
	if err != nil {
		return err
	}
	<-c.Context.Done()
	s.log.Info("worker stopping: draining in-flight calls", "shutdown_timeout", s.cfg.Worker.ShutdownTimeout)
	stop()
	s.log.Info("worker stopped")
	return nil
}

// oneProc runs the worker's goroutines on one P unless the environment sets
// GOMAXPROCS. Its work is waiting: for a slot, Redis, the API. With a
// second P each wake-up also wakes a second thread that finds nothing to do:
// on the fleet benchmark one P costs 12-18% less CPU and 30% fewer context
// switches per call (docs/benchmarks.md).
func oneProc() {
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(1)
	}
}
