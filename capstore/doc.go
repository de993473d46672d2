// Package capstore keeps, in Redis, what the provider's callbacks say about
// each number, and what a job waiting for callbacks needs to know.
//
//   - The capability record: one per E.164 number, the newest answer
//     (capable, not capable, unknown; rejected for the capability memory)
//     and when it was received. A newer answer replaces an older one; an
//     older one arriving late never does. Records are packed 11 bytes a
//     number, sorted, into one Redis string per bucket, with a short tail
//     that inserts fill in place, read whole and searched (see
//     docs/design.md).
//   - The awaiting registry: number -> (job, index in the job) for the
//     numbers a job sent and waits on. The first callback for such a number
//     marks it answered and counts it for its job at once, so a job knows
//     when its last callback came without scanning anything.
//
// Every key is spread over Redis Cluster slots by a hash tag; a write
// touches one tag (one slot) per script call, and [Store.Ingest] writes a
// whole batch of callbacks in one pipelined round trip per step.
package capstore
