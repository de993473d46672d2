package capstore

import "strconv"

// The memory's records: a bucket is one Redis string of recordLen-byte
// records sorted by field, each the number's 5-byte field (slotOf), then
// its record as [Record.Pack] writes it (4 bytes of seconds and
// capability, 2 of the rejection's reason reference, 0 but for a
// rejection). Reading a bucket is one bulk string, kept as it came; a
// number is found in it by binary search, the same in Go and in the
// scripts, which write a record in place (SETRANGE) or splice one in or
// out (SET of the whole bucket, a few hundred bytes).
const recordLen = 5 + PackedSize

// memKey is bucket b's records: mem:{tag}:sub, tag = b mod 1024 and sub =
// b / 1024, the hash tag of the bucket's awaiting hash.
func (s *Store) memKey(b uint32) string {
	return string(s.appendMemKey(make([]byte, 0, s.memKeyMax()), b))
}

// memKeyMax is the length of the longest bucket key.
func (s *Store) memKeyMax() int { return len(s.prefix) + len(":mem:{1023}:127") }

func (s *Store) appendMemKey(dst []byte, b uint32) []byte {
	dst = append(append(dst, s.prefix...), ":mem:{"...)
	dst = append(strconv.AppendUint(dst, uint64(b&(tags-1)), 10), "}:"...)
	return strconv.AppendUint(dst, uint64(b>>tagBits), 10)
}

// oldKey is bucket b's hash in the layout before the string buckets
// (field -> 4- or 6-byte record): a sweep moves its records into memKey.
func (s *Store) oldKey(b uint32) string {
	return s.prefix + ":cap:{" + strconv.Itoa(int(b&(tags-1))) + "}:" + strconv.Itoa(int(b>>tagBits))
}

// bucketAt is the i-th bucket in hash tag order: the 128 buckets of tag 0,
// then of tag 1, and so on, so that a run of them is few MGETs on a
// Cluster.
func bucketAt(i uint32) uint32 { return (i%(buckets>>tagBits))<<tagBits | i/(buckets>>tagBits) }

// bucketBytes is a bucket's records as Redis holds them, or a part of a
// snapshot's copy.
type bucketBytes interface{ ~string | ~[]byte }

// fieldAt is the field of the record at byte offset i of a bucket.
func fieldAt[T bucketBytes](s T, i int) uint64 {
	_ = s[i+4]
	return uint64(s[i])<<32 | uint64(s[i+1])<<24 | uint64(s[i+2])<<16 | uint64(s[i+3])<<8 | uint64(s[i+4])
}

// search returns the record of field f (33 bits) in bucket s, the zero
// Record when there is none. A bucket whose length is no multiple of
// recordLen is read up to its last whole record. It halves the bucket down
// to 8 records, then scans them: they span two cache lines or so, and a
// scan's branches are predicted where a bisection's are not.
func search[T bucketBytes](s T, f uint64) Record {
	lo, hi := 0, len(s)/recordLen
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
	return Record{}
}

// recordAt is the record at byte offset i of a bucket.
func recordAt[T bucketBytes](s T, i int) Record {
	v := s[i+5 : i+recordLen]
	return recordFrom(uint32(v[0])<<24|uint32(v[1])<<16|uint32(v[2])<<8|uint32(v[3]), uint16(v[4])<<8|uint16(v[5]))
}

// eachRecord calls fn for every record of bucket b, held as s.
func eachRecord(b uint32, s string, fn func(number uint64, r Record) error) error {
	for i := 0; i+recordLen <= len(s); i += recordLen {
		if err := fn(unmix(fieldAt(s, i)<<bucketBits|uint64(b)), recordAt(s, i)); err != nil {
			return err
		}
	}
	return nil
}

// luaRecords defines for the scripts RL (recordLen, 11), u32(s, i) (4 bytes
// big-endian at 1-based position i of s), f40(s, i) (a 5-byte field, as a
// number), bucket(k) (a bucket's records, "" when none) and find(s, f):
// the position of the record of field f in bucket s and true, or where it
// goes and false. Fields compare as numbers: Lua compares strings by the
// server's locale.
const luaRecords = `
local RL = 11
local function u32(s, i) local a, b, c, d = string.byte(s, i, i + 3) return ((a * 256 + b) * 256 + c) * 256 + d end
local function f40(s, i) local a, b, c, d, e = string.byte(s, i, i + 4) return (((a * 256 + b) * 256 + c) * 256 + d) * 256 + e end
local function bucket(k) return redis.call('GET', k) or '' end
local function find(s, f)
  local lo, hi = 0, math.floor(#s / RL)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local g = f40(s, mid * RL + 1)
    if g < f then lo = mid + 1 elseif g > f then hi = mid else return mid * RL + 1, true end
  end
  return lo * RL + 1, false
end
-- put writes record r (field and value) of bucket k, held as s, at pos.
local function put(k, s, pos, found, r)
  if found then redis.call('SETRANGE', k, pos - 1, r)
  elseif pos == 1 then redis.call('SET', k, r .. s)
  elseif pos > #s then redis.call('SET', k, s .. r)
  else redis.call('SET', k, string.sub(s, 1, pos - 1) .. r .. string.sub(s, pos)) end
end
`
