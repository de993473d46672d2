package capstore

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"
)

// Capability is what the provider (or the API) said about a number.
type Capability uint8

// Capabilities. The zero value means no record.
const (
	// None: no record of the number.
	None Capability = iota
	// Capable: the number can receive SMS over IP.
	Capable
	// NotCapable: the number cannot receive SMS over IP.
	NotCapable
	// Unknown: a callback whose status value is configured as neither.
	Unknown
	// Rejected: the API refused the number (kept for the capability
	// memory; callbacks never carry it).
	Rejected
)

// String returns the capability as results.csv writes it: "capable",
// "not_capable", "unknown", "rejected", or "" for None.
func (c Capability) String() string {
	switch c {
	case Capable:
		return "capable"
	case NotCapable:
		return "not_capable"
	case Unknown:
		return "unknown"
	case Rejected:
		return "rejected"
	}
	return ""
}

// Epoch is the origin of the packed times: a record holds whole seconds
// since Epoch in 30 bits, which last until 2058.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

const maxSeconds = 1<<30 - 1

// Record is the remembered answer for one number. Its fields are in the
// order that packs it in 32 bytes (40 with Capability first): a list's
// enqueue holds one for each of its numbers.
type Record struct {
	// At is when the answer was received, to the second (UTC).
	At time.Time
	// Reason is, for Rejected, the reference of the API's code and message
	// (see [Store.Reasons]); 0 when unknown.
	Reason     uint16
	Capability Capability
}

// IsZero reports whether r holds nothing (no record).
func (r Record) IsZero() bool { return r.Capability == None }

// PackedSize is the size of a record as [Record.Pack] writes it.
const PackedSize = 6

// Pack returns r as 6 bytes: seconds since Epoch << 2 | (capability - 1),
// big-endian in 4 bytes, then the reason's reference in 2 (0 but for
// Rejected), as Redis and files of the memory keep it. r must not be zero.
func (r Record) Pack() [PackedSize]byte {
	var b [PackedSize]byte
	binary.BigEndian.PutUint32(b[:], uint32(seconds(r.At))<<2|uint32(r.Capability-1)&3)
	binary.BigEndian.PutUint16(b[4:], r.Reason)
	return b
}

// UnpackRecord is the inverse of [Record.Pack].
func UnpackRecord(b [PackedSize]byte) Record {
	return recordFrom(binary.BigEndian.Uint32(b[:]), binary.BigEndian.Uint16(b[4:]))
}

// recordFrom is a record of its 4 stored bytes u (seconds << 2 | capability)
// and its reason reference.
func recordFrom(u uint32, reason uint16) Record {
	return Record{
		Capability: Capability(u&3) + 1,
		At:         Epoch.Add(time.Duration(u>>2) * time.Second),
		Reason:     reason,
	}
}

// packRecord is a record as the scripts write it after its field: 6 bytes,
// as Record.Pack. Scripts compare the seconds (the first 4 bytes / 4) to
// let the newer answer win.
func packRecord(c Capability, at time.Time, reason uint16) string {
	b := Record{Capability: c, At: at, Reason: reason}.Pack()
	return string(b[:])
}

// Stale reports whether r is older than forgetAfter at now: the memory
// ignores it (a sweep drops it later). forgetAfter 0 keeps records forever.
func (r Record) Stale(now time.Time, forgetAfter time.Duration) bool {
	return forgetAfter > 0 && !r.At.After(now.Add(-forgetAfter))
}

// seconds is t in whole seconds since Epoch, clamped to what 30 bits hold.
func seconds(t time.Time) int64 {
	s := int64(t.Sub(Epoch) / time.Second)
	return min(max(s, 0), maxSeconds)
}

// Numbers are E.164 numbers as the integer of their digits (at most 15
// digits, so below 2^50), as enqueue keys them. A number's slot in Redis:
// the 50-bit value is scrambled by a bijection (so that buckets fill evenly
// whatever the numbering plan), its low bucketBits pick its bucket (its
// awaiting hash), the other 33 bits are its field there, 5 bytes. The
// memory's records go to fewer buckets: the low memBits of the bucket, and
// a field of 36 bits (the bucket's 3 bits above memBits, then the 33).
const (
	numberBits = 50
	numberMask = 1<<numberBits - 1
	// bucketBits sets 2^17 = 131,072 buckets for the awaiting hashes:
	// below Redis's hash-max-listpack-entries of 128 at 10M awaited
	// numbers, in the compact listpack encoding.
	bucketBits = 17
	buckets    = 1 << bucketBits
	fieldBits  = numberBits - bucketBits
	// memBits sets 2^14 = 16,384 buckets for the memory's records (about
	// 610 numbers a bucket at 10M): enqueue reads every bucket, and Redis's
	// cost is per key read. An insert does not rewrite the bucket (see
	// records.go).
	memBits    = 14
	memBuckets = 1 << memBits
	// tagBits: buckets share 1,024 Cluster hash tags (bucket mod 1,024),
	// so a script can write every bucket of one tag at once. A number's
	// memory bucket has its bucket's tag (memBits >= tagBits).
	tagBits = 10
	tags    = 1 << tagBits

	mixMul  = 0x2545f4914f6cdd1d & numberMask // odd
	mixMul2 = 0x369dea0f31a53f85 & numberMask // odd
	mixXor  = 25
)

// MaxNumber is the largest number a store takes (15 digits).
const MaxNumber = 999_999_999_999_999

// slot is where a number lives: its bucket and its memory field (5 bytes,
// memField).
type slot struct {
	bucket uint32
	field  string
}

func (s slot) tag() uint32 { return s.bucket & (tags - 1) }

// memField is the memory field of a scrambled number x: its bucket's bits
// above memBits << 33 | its 33-bit field. The awaiting hash's field is its
// low 33 bits.
func memField(x uint64) uint64 {
	return x>>bucketBits | (x&(buckets-1))>>memBits<<fieldBits
}

func slotOf(n uint64) slot {
	x := mix(n)
	var b [5]byte
	f := memField(x)
	b[0], b[1], b[2], b[3], b[4] = byte(f>>32), byte(f>>24), byte(f>>16), byte(f>>8), byte(f)
	return slot{bucket: uint32(x & (buckets - 1)), field: string(b[:])}
}

// numberOf is the inverse of slotOf; it reads the field's low 33 bits.
func numberOf(bucket uint32, field string) (uint64, error) {
	if len(field) != 5 {
		return 0, fmt.Errorf("number field of %d bytes, want 5", len(field))
	}
	var f uint64
	for i := range 5 {
		f = f<<8 | uint64(field[i])
	}
	return unmix(f&(1<<fieldBits-1)<<bucketBits | uint64(bucket)), nil
}

// memNumber is the number of memory field f of memory bucket mb.
func memNumber(mb uint32, f uint64) uint64 {
	return unmix(f&(1<<fieldBits-1)<<bucketBits | f>>fieldBits<<memBits | uint64(mb))
}

func mix(x uint64) uint64 {
	x = x * mixMul & numberMask
	x ^= x >> mixXor
	x = x * mixMul2 & numberMask
	x ^= x >> mixXor
	return x
}

func unmix(x uint64) uint64 {
	x ^= x >> mixXor // 2*mixXor >= numberBits: one step inverts it
	x = x * inverse(mixMul2) & numberMask
	x ^= x >> mixXor
	return x * inverse(mixMul) & numberMask
}

// inverse is the multiplicative inverse of odd a modulo 2^64 (and so modulo
// 2^numberBits), by Newton's iteration.
func inverse(a uint64) uint64 {
	x := a
	for range 6 {
		x *= 2 - a*x
	}
	return x
}

// Digits returns the E.164 form ("+" and digits) of a number.
func Digits(n uint64) string { return "+" + strconv.FormatUint(n, 10) }
