// Package worker is capcheck's task processor: an asynq server that handles
// the chunk tasks of every job (calling the capability-check API) and the
// finalize task that writes a finished job's output files. Any number of
// workers share one Redis, one job store and one fleet rate limit.
//
//	lim, _ := ratelimit.New(rdb, ratelimit.Config{Limit: ratelimit.PerSecond(200)})
//	api, _ := capapi.New(capapi.Config{BaseURL: url, SID: sid, APIKey: key.Reveal()})
//	w, err := worker.New(jobstore.New(rdb), api, lim, worker.Config{ // one Redis client for all
//		Metrics: worker.NewMetrics(registry),
//	})
//	if err != nil { ... }
//	err = w.Run(ctx) // serves until ctx is done, then drains
//
// # A chunk
//
// The handler reads the chunk's numbers and what was recorded for them, and
// sends the ranges still pending (jobstore.Pending) in lanes (lanes.go): each
// lane has one call in flight, each call after a wait on the fleet limiter,
// and a chunk has more than one lane while its worker has fewer than
// Config.Concurrency, or, up to Config.CallsInFlight, while every other
// lane is in a call (the limiter waits for calls). The outcome of every call is recorded before its
// lane's next one, so a chunk re-delivered after a crash resumes where it
// stopped and only calls in flight at the crash are repeated. What to do with
// each answer is decided by one pure function (decide.go):
//
//   - 202: the numbers are accepted.
//   - 400 (invalid input) for several numbers: a split marker is recorded and
//     the halves are sent, the left one first; when the left half is accepted
//     the right one is known to hold an invalid number and is split at once.
//     A single number refused is rejected with the API's code and message.
//   - 429: the whole fleet pauses for Retry-After (Config.PauseDefault when
//     absent); the call is repeated and not counted as an attempt.
//   - 5xx, timeouts, resets: repeated after an exponential backoff with full
//     jitter, up to Config.MaxAttempts calls; then the numbers are failed.
//   - 401/403, or an answer that shows a wrong URL: the job is aborted
//     (jobstore.Store.Abort). Before each call a worker checks for that, so
//     the fleet sends no more calls for the job; its pending numbers are
//     recorded failed and its chunks still finish, so the job ends failed.
//
// When the last chunk of a job is done, the finalize task is enqueued.
//
// # Stopping: drain, abort, yield
//
// A chunk handler stops before its chunk is settled in three ways:
//
//   - drain: Shutdown (SIGTERM, or the end of Run's context) stops taking
//     tasks, lets each call in flight finish and be recorded, and the chunk
//     handler returns ErrDraining. Calls still running after
//     Config.ShutdownTimeout are canceled.
//   - yield: a little before asynq's deadline of the task, limiter waits
//     and backoffs end and the handler returns ErrYielding.
//   - abort: the job was aborted by a 401/403 (above); nothing is handed
//     back, the chunk settles with its numbers failed.
//
// Drained and yielded chunks are handed back (ErrHandedBack): asynq does not
// count that as a failure and re-queues the task at once for another
// replica. A chunk held by another run is handed back too, to run again
// once that hold could have lapsed.
//
// A chunk task asynq gives up on (retries exhausted) still settles: its
// pending numbers are recorded failed ("gave up: ...") and the chunk is
// finished, so the job always finishes.
package worker
