// Package jobstore keeps capcheck's jobs in Redis: the job record and its
// counters, the numbers of each chunk, what the workers recorded for them, the
// rejects, and the transitions that make a job finish exactly once.
//
// The layout of keys is in docs/design.md. Every key of a job carries the job
// ID as a hash tag, so a job lives in one Redis Cluster slot and the scripts
// that touch several of its keys stay atomic.
//
// The enqueue side:
//
//	job, created, err := store.CreateJob(ctx, jobstore.Spec{ID: id, Input: path, Fingerprint: fp, ChunkSize: 1000})
//	store.PutChunk(ctx, id, i, entries)          // then enqueue tasks.NewChunk(tasks.Chunk{Job: id, Chunk: i})
//	store.SetChunksEnqueued(ctx, id, i+1)        // resume point after a crash
//	store.PutRejects(ctx, id, k, csvLines)       // rejects blob k, rows in order, no header
//	allDone, err := store.FinishEnqueue(ctx, id, counts, chunks, rejectBlobs)
//	tasks.FinalizeWhenDone(ctx, client, allDone, tasks.Finalize{Job: id, Gen: job.Gen})
//
// The worker side:
//
//	entries, _ := store.Chunk(ctx, id, i)
//	outs, _ := store.Outcomes(ctx, id, i)
//	for _, r := range jobstore.Pending(len(entries), batchSize, outs) { ... store.Record(ctx, id, gen, i, outcome, calls) }
//	allDone, _ := store.FinishChunk(ctx, id, gen, i, len(entries))
//	tasks.FinalizeWhenDone(ctx, client, allDone, tasks.Finalize{Job: id, Gen: gen})
//
// A job stopped by Abort sends nothing more; its remaining numbers are recorded
// failed, so it still finishes, in state FailedJob.
//
// The store works on Redis only. A caller whose Redis does not outlive it (the
// embedded run) keeps a copy of what is recorded through the one hook,
// OnRecord, and puts it back with Record and Add under WithClock.
package jobstore
