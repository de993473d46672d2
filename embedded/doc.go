// Package embedded is `capcheck run` on a bare machine: an in-process Redis
// (miniredis) that dies with the process, and the files under the output
// folder that let a re-run of the same command resume a job without sending
// a recorded call again.
//
// Under the output folder {out}:
//
//   - {out}/.run.lock: an flock held while a run works in the folder. Two runs
//     on embedded Redis servers of their own would each send every number.
//   - {out}/{job}/journal.jsonl: every outcome and counter the job store
//     records, one JSON line each, synced before the next call.
//   - {out}/{job}/journal-job.json: the job's spec (input fingerprint, chunk
//     size), when it was first created, and the target its calls were sent
//     to (an API and account, or a simulator).
//   - {out}/callbacks.jsonl: every callback the run's receiver stored, synced
//     before it is acknowledged ([Run.JournalCallbacks]); Resume stores them
//     again, after the job's accepted numbers await again.
//   - {out}/.capability-memory: the capability memory of every run in the
//     folder (package memfile), mapped at Open, merged with what the run
//     learned at Close (written to a temporary file, renamed over it).
//
// None of them is followed when it is a symbolic link: a link planted in the
// folder would have the run write through it to another file.
//
// The embedded Redis listens on a loopback port and requires a random
// password that lives only in this process's memory, so another user of the
// host cannot read the chunks (phone numbers) or enqueue tasks.
//
// A run goes:
//
//	r, err := embedded.Open(embedded.Config{Out: out, Target: target, Logger: log})
//	defer r.Close()                    // after the workers and the receiver: saves the memory
//	r.Restore(ctx, jobID)              // before enqueue: the job's record, from its spec file
//	res, err := enqueue.Run(ctx, enqueue.Config{Store: r.Store(), Memory: r.Memory().Snapshot(), ...})
//	r.Resume(ctx, res.JobID)           // after enqueue, before any worker: spec file, replay
//	// workers on r.Redis(), r.RedisConnOpt() and r.Store()
//
// Replay follows the rule of a re-drive (jobstore.Outcome.Redriven): numbers
// that ended failed are not replayed, so the re-run sends them again, as
// `capcheck retry` would on a shared Redis; their calls still count.
package embedded
