// Package ratelimit is the fleet-wide rate limit for API requests: any number
// of worker processes (replicas), each with many goroutines, share one Redis
// and one limit.
//
// The contract (docs/design.md, "Rate limit"): no sliding 1-second window
// carries more than Rate requests (+1) fleet-wide, a steady run reaches at
// least 95% of Rate, and a 429 from the API pauses the whole fleet for its
// Retry-After (at most PauseMax).
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
// [Limiter.Load] puts the script in Redis's script cache ahead of the first
// permit (a worker calls it at start): after Redis starts, or its scripts
// are flushed, the first permit's EVALSHA would be refused as NOSCRIPT, and
// the script sent whole and compiled on the way to the slot. It changes
// nothing else: an idle fleet's first slot starts at once (now - tolerance
// is in the past), and the script is loaded when missing anyway.
//
// T is 1/(Rate×0.995): 0.5% of the rate is held back, so a 1-second
// window has room for S = (floor(Rate)+1)·T - 1s of lateness (about 10 ms at
// 200 req/s, 6 ms at 1000) and still carries at most Rate+1 requests: a
// request written at most S after its slot started cannot crowd the window.
// Half of S is the tolerance: a slot may be taken up to it after it started,
// which lets a replica that fell a little behind (a late timer) use a slot
// that has just passed instead of losing it, so the fleet reaches 99.5% of
// Rate even when slots are shorter than a timer's granularity; after an idle
// time it allows a burst of at most tolerance/T requests, within the bound.
//
// # No late request
//
// A stall after Wait returns (a GC pause, a starved core, a slow TLS set-up)
// used to be what the room was for: with 2% held back, 20 ms of it. Now
// [Limiter.Take] returns a [Permit], and the code that writes the request
// calls [Permit.Ready] right before the first byte goes on the wire
// (capapi does it from the connection's Write, after DNS, TCP and TLS): a
// request more than S after its slot's start gives the slot up and takes a
// new one instead of being sent late. So a stalled process cannot bunch
// requests into one window, whatever the stall, and the room held back only
// has to cover what happens after that check: writing to a socket and the
// network, well under a millisecond on a healthy host. The slot's start on
// the local clock is estimated from the Redis round trip that granted it,
// on the early side, so lateness is never underestimated.
//
// # Replicas with different rates
//
// The hash also holds iv, the longest slot interval asserted by a replica in
// the last 2 seconds, and slots are spaced by it: a fleet whose replicas
// were started with different rates sends at the lowest rate among the
// replicas that are sending (a replica started with a lower rate by mistake
// slows the fleet down, never speeds it up past anyone's limit). A replica
// whose own rate is higher sees it in the script's answer and logs a warning
// naming both rates, once per value. Two seconds after the slower replica
// stops sending, the others' rate applies again.
//
// # In one process
//
// Each Limiter has at most one unused slot reserved at any time. Its
// goroutines queue in order on a one-slot semaphore; the one at the head:
//
//  0. runs the caller's function, if it came through [Limiter.TakeAfter]
//     (work due before the caller's request, not sooner), while the slot
//     reserved for it is still ahead; through [Limiter.TakeRiding], the
//     caller's commands ([Rider]) go instead in the pipeline of the first
//     round trip below (the worker writes its lanes' outcomes so, at no
//     round trip of their own), or alone when the permit needs none;
//  1. waits on a local x/time/rate limiter at Rate, which caps one replica at
//     Rate even if the Redis state were lost, and costs nothing when the fleet
//     is the tighter limit (its burst is 1 plus what the tolerance allows, so
//     its own late timers cost no throughput);
//  2. takes the slot the previous holder reserved for it, or reserves one;
//     if that slot has already started, it returns at once (Redis has just
//     checked the pause);
//  3. else sleeps until the slot starts and confirms it in Redis, right
//     before returning: if the fleet was paused meanwhile, or this holder is
//     later than the send bound less 1 ms (what is left for the caller to
//     write the request; at least the tolerance), the slot is void and the same call reserves another (after 3 such
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
// # A state that cannot be trusted
//
// The hash is shared by the whole fleet, so anyone who can write to Redis,
// a bug, or a failover to a Redis whose clock is far behind can leave in it
// what capcheck never writes. Unchecked, a pause a year ahead stops the fleet
// for a year (and keeps the key alive as long); a pause of 1e17 µs overflows
// a time.Duration and turns the limit off; 1e30 makes every reservation fail
// (its expiry is out of range). So the script clamps what it reads, in every
// mode:
//
//   - a value that is not a finite number is taken as absent;
//   - pause is at most now + PauseMax + 1 minute of slack (the longest pause
//     capcheck sets: [Limiter.Pause] caps its argument at PauseMax);
//   - tat is at most max(now, pause) + 1024 intervals (room for 1024
//     replicas each holding one reservation), and never more than the
//     pause's limit beyond it.
//
// The next write stores the clamped values, so a clamp does not move on
// with the clock: a bad state stops the fleet for at most those bounds, once,
// and the key expires a minute after them. The Go side also converts times
// to Durations saturating, never wrapping around.
//
// # A state that lost writes
//
// Redis replicates asynchronously: a failover can promote a replica whose
// hash lags (or that never had it), so tat goes back and the state would
// hand out again slots it handed out before, while their holders still
// confirm and use them: up to one extra request per replica in a second.
// Each replica passes the start of the latest slot it was handed; a tat
// short of it by more than one interval tells the script that its state is
// behind, and it begins a new epoch (the hash's ep) with tat past that
// slot. Every slot is handed out with its epoch, and a held slot of another
// epoch is void at its confirm (counted with the late ones): its holder takes
// a new one. So after the first call of a replica that was handed a lost
// slot, no slot of the old state is used alongside the new ones.
//
// # Time in tests
//
// Every mode takes an optional "now" argument that replaces Redis's TIME.
// Only tests set it (with a fake clock that also drives the limiter's
// sleeps), so that they assert the script's exact answers and simulate a
// fleet for minutes in milliseconds, instead of sleeping on the wall clock.
//
// All replicas should use the same Key and Limit. If Redis fails, Wait returns
// an error and no permit; the caller should not send (and retry its task
// later). If Redis's clock steps back, the fleet waits that much longer once.
// [Limiter.Stats] counts permits and voided slots for metrics: many slots
// voided late mean a machine (or a Redis) too busy to keep time.
package ratelimit
