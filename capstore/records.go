package capstore

import "strconv"

// The memory's records: a bucket is one Redis string, its records sorted
// by field, then a tail of tailSlots slots for the records inserted since.
// A record is the number's 5-byte memory field (memField), then its record
// as [Record.Pack] writes it (4 bytes of seconds and capability, 2 of the
// rejection's reason reference, 0 but for a rejection). A filled tail slot
// has tailBit set in its field (real fields use 36 of the 40 bits); an
// empty one is zeros, and the filled ones come first. Reading a bucket is
// one bulk string, kept as it came; a number is found in it by binary
// search of the sorted part, then a scan of the tail, the same in Go and
// in the scripts. The scripts write a record in place (SETRANGE: an update,
// or an insert into the tail's first empty slot) and only when the tail is
// full merge it into the sorted part (SET of the whole bucket, with an
// empty tail): an insert goes to replicas and the AOF as a few bytes, and
// once in tailSlots+1 as the bucket. SETRANGE within the string's length
// leaves its allocation as it is, where APPEND would let Redis double it.
const (
	recordLen = 5 + PackedSize
	tailSlots = 16
	tailBit   = 1 << 39
)

// memKey is the records of memory bucket b mod memBuckets: m:{tag}:sub,
// tag = b mod 1024 and sub = b / 1024 (mod 16), the hash tag of the
// awaiting hashes of its numbers.
func (s *Store) memKey(b uint32) string {
	return string(s.appendMemKey(make([]byte, 0, s.memKeyMax()), b))
}

// memKeyMax is the length of the longest bucket key.
func (s *Store) memKeyMax() int { return len(s.prefix) + len(":m:{1023}:15") }

func (s *Store) appendMemKey(dst []byte, b uint32) []byte {
	b &= memBuckets - 1
	dst = append(append(dst, s.prefix...), ":m:{"...)
	dst = append(strconv.AppendUint(dst, uint64(b&(tags-1)), 10), "}:"...)
	return strconv.AppendUint(dst, uint64(b>>tagBits), 10)
}

// oldMemKey is bucket b's string of sorted records in the layout before
// (2^17 buckets, 33-bit fields, no tail): a sweep moves its records into
// memKey.
func (s *Store) oldMemKey(b uint32) string {
	return s.prefix + ":mem:{" + strconv.Itoa(int(b&(tags-1))) + "}:" + strconv.Itoa(int(b>>tagBits))
}

// oldKey is bucket b's hash in the layout before the string buckets
// (33-bit field -> 4- or 6-byte record): a sweep moves its records into
// memKey.
func (s *Store) oldKey(b uint32) string {
	return s.prefix + ":cap:{" + strconv.Itoa(int(b&(tags-1))) + "}:" + strconv.Itoa(int(b>>tagBits))
}

// bucketAt is the i-th bucket in hash tag order: the 128 buckets of tag 0,
// then of tag 1, and so on, so that a run of them is few MGETs on a
// Cluster.
func bucketAt(i uint32) uint32 { return (i%(buckets>>tagBits))<<tagBits | i/(buckets>>tagBits) }

// memBucketAt is the i-th memory bucket in hash tag order (16 a tag).
func memBucketAt(i uint32) uint32 {
	return (i%(memBuckets>>tagBits))<<tagBits | i/(memBuckets>>tagBits)
}

// bucketBytes is a bucket's records as Redis holds them, or a part of a
// snapshot's copy.
type bucketBytes interface{ ~string | ~[]byte }

// fieldAt is the field of the record at byte offset i of a bucket.
func fieldAt[T bucketBytes](s T, i int) uint64 {
	_ = s[i+4]
	return uint64(s[i])<<32 | uint64(s[i+1])<<24 | uint64(s[i+2])<<16 | uint64(s[i+3])<<8 | uint64(s[i+4])
}

// sortedLen is the count of sorted records of a bucket of n slots.
func sortedLen(n int) int { return max(n-tailSlots, 0) }

// search returns the record of memory field f in bucket s, the zero
// Record when there is none. A bucket whose length is no multiple of
// recordLen is read up to its last whole record. It halves the sorted part
// down to 8 records, then scans them (they span two cache lines or so, and
// a scan's branches are predicted where a bisection's are not), then the
// tail.
func search[T bucketBytes](s T, f uint64) Record {
	n := len(s) / recordLen
	lo, hi := 0, sortedLen(n)
	end := hi
	for hi-lo > 8 {
		mid := int(uint(lo+hi) >> 1)
		if fieldAt(s, mid*recordLen) < f {
			lo = mid + 1
		} else {
			hi = mid + 1
		}
	}
	for i := lo * recordLen; i < hi*recordLen; i += recordLen {
		if g := fieldAt(s, i); g >= f {
			if g == f {
				return recordAt(s, i)
			}
			break
		}
	}
	for i := end * recordLen; i < n*recordLen; i += recordLen {
		g := fieldAt(s, i)
		if g < tailBit {
			break
		}
		if g == f|tailBit {
			return recordAt(s, i)
		}
	}
	return Record{}
}

// recordAt is the record at byte offset i of a bucket.
func recordAt[T bucketBytes](s T, i int) Record {
	v := s[i+5 : i+recordLen]
	return recordFrom(uint32(v[0])<<24|uint32(v[1])<<16|uint32(v[2])<<8|uint32(v[3]), uint16(v[4])<<8|uint16(v[5]))
}

// eachRecord calls fn for every record of memory bucket b, held as s: the
// sorted ones in order, then the tail's.
func eachRecord(b uint32, s string, fn func(number uint64, r Record) error) error {
	n := len(s) / recordLen
	sorted := sortedLen(n)
	for i := 0; i < n; i++ {
		f := fieldAt(s, i*recordLen)
		if i >= sorted {
			if f < tailBit {
				break
			}
			f &^= tailBit
		}
		if err := fn(memNumber(b, f), recordAt(s, i*recordLen)); err != nil {
			return err
		}
	}
	return nil
}

// countRecords is how many records bucket s holds.
func countRecords(s string) int64 {
	n := len(s) / recordLen
	c := sortedLen(n)
	for i := c; i < n && fieldAt(s, i*recordLen) >= tailBit; i++ {
		c++
	}
	return int64(c)
}

// luaRecords defines for the scripts RL (recordLen, 11), K (tailSlots),
// u32(s, i) (4 bytes big-endian at 1-based position i of s), f40(s, i) (a
// 5-byte field, as a number), af(f) (the awaiting hash's field of memory
// field f, its low 33 bits), bucket(k) (a bucket's records, "" when none),
// findSorted(s, n, f) (in the first n records of s, the position of the
// record of field f and true, or where it goes and false), find(s, f)
// (the position of field f's record in bucket s and true, or the tail's
// first empty slot (nil when full) and false), put (writes a record) and
// drop (deletes one). Fields compare as numbers: Lua compares strings by
// the server's locale.
const luaRecords = `
local RL = 11
local K = 16
local TAIL = 549755813888
local function u32(s, i) local a, b, c, d = string.byte(s, i, i + 3) return ((a * 256 + b) * 256 + c) * 256 + d end
local function f40(s, i) local a, b, c, d, e = string.byte(s, i, i + 4) return (((a * 256 + b) * 256 + c) * 256 + d) * 256 + e end
local function af(f) return string.char(string.byte(f, 1) % 2) .. string.sub(f, 2) end
local function bucket(k) return redis.call('GET', k) or '' end
local function findSorted(s, n, f)
  local lo, hi = 0, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local g = f40(s, mid * RL + 1)
    if g < f then lo = mid + 1 elseif g > f then hi = mid else return mid * RL + 1, true end
  end
  return lo * RL + 1, false
end
local function sortedLen(s) return math.max(math.floor(#s / RL) - K, 0) end
local function find(s, f)
  local n = sortedLen(s)
  local pos, found = findSorted(s, n, f)
  if found then return pos, true end
  for p = n * RL + 1, #s - RL + 1, RL do
    local g = f40(s, p)
    if g < TAIL then return p, false end
    if g - TAIL == f then return p, true end
  end
  return nil, false
end
local function empty(n) return string.rep('\0', n * RL) end
-- merged is bucket s with its tail and record r (unmarked) in the sorted
-- part, and an empty tail.
local function merged(s, r)
  local n = sortedLen(s)
  local new = {{f40(r, 1), r}}
  for p = n * RL + 1, #s - RL + 1, RL do
    local g = f40(s, p)
    if g >= TAIL then new[#new + 1] = {g - TAIL, string.char(string.byte(s, p) - 128) .. string.sub(s, p + 1, p + RL - 1)} end
  end
  table.sort(new, function(a, b) return a[1] < b[1] end)
  local parts, at = {}, 1
  for _, x in ipairs(new) do
    local pos = findSorted(s, n, x[1])
    parts[#parts + 1] = string.sub(s, at, pos - 1)
    parts[#parts + 1] = x[2]
    at = pos
  end
  parts[#parts + 1] = string.sub(s, at, n * RL)
  parts[#parts + 1] = empty(K)
  return table.concat(parts)
end
-- put writes record f .. v of bucket k, held as s, where find(s, f) said.
local function put(k, s, pos, found, f, v)
  if found then redis.call('SETRANGE', k, pos + 4, v)
  elseif #s < K * RL then redis.call('SET', k, string.char(string.byte(f, 1) + 128) .. string.sub(f, 2) .. v .. empty(K - 1))
  elseif pos then redis.call('SETRANGE', k, pos - 1, string.char(string.byte(f, 1) + 128) .. string.sub(f, 2) .. v)
  else redis.call('SET', k, merged(s, f .. v)) end
end
-- drop deletes the record at pos (found by find) of bucket k, held as s,
-- and the bucket once it holds none.
local function drop(k, s, pos)
  local n = sortedLen(s)
  if pos <= n * RL then s = string.sub(s, 1, pos - 1) .. string.sub(s, pos + RL)
  else s = string.sub(s, 1, pos - 1) .. string.sub(s, pos + RL) .. empty(1) end
  if #s <= K * RL and string.byte(s, 1) < 128 then redis.call('DEL', k) else redis.call('SET', k, s) end
end
`
