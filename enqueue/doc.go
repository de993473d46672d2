// Package enqueue turns a list of phone numbers into a capcheck job: it reads
// the list (package listreader), normalizes each number to E.164 on all
// cores and keeps the first row of each (package phonenorm), cuts the unique
// numbers into chunks, stores the chunks in the job store and enqueues one
// asynq task per chunk. Every other record becomes a line of
// {out}/{job}/rejects.csv: invalid, missing, malformed, or duplicate of row N.
// Redrive sends the failed numbers of a finished job to the workers again.
//
// The pure part — Process with a Sink — needs no Redis:
//
//	rd, err := listreader.New(f, listreader.Config{Column: "phone"})
//	counts, err := enqueue.Process(ctx, rd, enqueue.PipelineConfig{}, sink)
//
// Run adds the job store, the tasks, the rejects file, a progress line and
// the resume logic that makes a re-run of the same job enqueue nothing twice:
//
//	res, err := enqueue.Run(ctx, enqueue.Config{Input: "list.csv", Store: store, Client: client})
//
// Run's stages, in order: open (the configuration, the input, the job ID),
// readHeader (the format and the column), lock (one process per job),
// createJob, then either enqueuedBefore (nothing to do) or resume (what
// earlier runs stored), enqueueList (the pipeline into the writer and
// rejects.csv), finish (the job is enqueued) and report.
//
// # Data flow
//
// One goroutine reads batches of records; GOMAXPROCS goroutines normalize
// them (libphonenumber costs ~10 µs a number); the calling goroutine puts
// the batches back in row order, dedupes (phonenorm.Set: E.164-as-uint64 to
// first row, 12 bytes a slot, outside the Go heap) and hands chunks and
// rejects to the Sink; Run's sink passes them to a writer goroutine so Redis
// latency overlaps parsing. Until the first chunk is out, the pipeline holds
// only that chunk's rows and Run's sink waits for its writes (see Process):
// the workers wait for its task. Bounded queues between them keep memory flat:
// peak RSS is the dedupe table plus a few tens of megabytes
// (docs/benchmarks.md).
package enqueue
