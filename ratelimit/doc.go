// Package ratelimit is the fleet-wide rate limit for API requests: any number
// of worker processes (replicas), each with many goroutines, share one Redis
// and one limit.
//
// The contract (SPEC.md, "Guarantees"): no sliding 1-second window carries
// more than Rate requests (+1) fleet-wide, a steady run reaches at least 95% of
// Rate, and a 429 from the API pauses the whole fleet for its Retry-After.
//
// # Why not something simpler
//
// A fixed-window counter (INCR a key per second) lets Rate requests through at
// the end of one second and Rate more at the start of the next: 2×Rate in a
// sliding window. A limiter in each process (golang.org/x/time/rate alone)
// lets every replica send Rate: replicas×Rate in all. A token bucket with a
// burst lets the burst through at once. None keeps the sliding-window bound.
//
// # The algorithm: GCRA in Redis
//
// The fleet's state is one Redis hash (Config.Key) with two times, in
// microseconds on the Redis server's clock:
//
//   - tat, the theoretical arrival time: when the next free slot starts;
//   - pause, before which nobody sends (set by [Limiter.Pause] after a 429).
//
// One Lua script (gcra.lua) reads the clock with TIME and updates the hash
// atomically. To take a slot it computes
//
//	start = max(tat, now - tolerance, pause)
//	tat   = start + T
//
// and returns start and now; the caller sleeps start-now (if positive) and
// sends. So slots are exactly T apart on one clock, whichever replica takes
// them. Reading the clock inside the script means replicas' clocks never
// matter, and the script touches one key, so it works on Redis Cluster. The
// same script sets the pause (pause = max(pause, now+d)), confirms slots (see
// below) and reads the pause for [Limiter.PausedFor].
//
// T is 1/(Rate×0.98): 2% of the rate is held back, so a 1-second window has
// room for about 20 ms of timing noise (Go timers wake up to 1 ms late, a
// busy CPU, the network) and still carries at most Rate+1 requests. Half of
// that room is the tolerance: a request may leave up to it after its slot
// started; the other half is left for what happens after Wait returns. The
// tolerance lets a replica that fell a little behind (a late timer) take a
// slot that has just passed instead of losing it, so the fleet reaches 98% of
// Rate even when slots are shorter than a timer's granularity; after an idle
// time it allows a burst of at most tolerance/T requests, within the bound.
// It is about 10 ms at high rates (more at low ones, where T is long).
//
// # In one process
//
// Each Limiter has at most one unused slot reserved at any time. Its
// goroutines queue in order on a one-slot semaphore; the one at the head:
//
//  1. waits on a local x/time/rate limiter at Rate, which caps one replica at
//     Rate even if the Redis state were lost, and costs nothing when the fleet
//     is the tighter limit (its burst is 1 plus what the tolerance allows, so
//     its own late timers cost no throughput);
//  2. takes the slot the previous holder reserved for it, or reserves one;
//     if that slot has already started, it returns at once (Redis has just
//     checked the pause);
//  3. else sleeps until the slot starts and confirms it in Redis, right
//     before returning: if the fleet was paused meanwhile, or this holder is
//     later than the tolerance (its request would crowd the slots after its
//     own), the slot is void and the same call reserves another (after 3 such
//     misses in a row it sends late rather than starve). If goroutines are
//     queued behind it, the same call also reserves the next slot for the
//     next holder;
//  4. returns from [Limiter.Wait], and the next goroutine moves up.
//
// Keeping one reservation per replica keeps the queue in Redis short (at most
// one slot per replica ahead of now), so a pause or a replica that stops wastes
// at most one slot each, and goroutines that wait cost Redis nothing. A permit
// costs one Redis round trip (two when the holder had to sleep and no one was
// queued behind it); BenchmarkWait measures it (about 30µs on loopback).
//
// All replicas must use the same Key and Limit. If Redis fails, Wait returns
// an error and no permit; the caller should not send (and retry its task
// later). If Redis's clock steps back, the fleet waits that much longer once.
// [Limiter.Stats] counts permits and voided slots for metrics: many slots
// voided late mean a machine (or a Redis) too busy to keep time.
package ratelimit
