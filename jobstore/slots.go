package jobstore

import (
	"strconv"
	"sync"
	"sync/atomic"
)

// Redis Cluster hashes a key's tag with CRC16 (XMODEM) into one of 16384
// slots. Left to chance, the tags of a few hundred chunks fall unevenly on
// the masters (a master may get 41% of a 200-chunk job); spreadTag steers
// them instead: chunk i's tag lands in band i mod spreadBands of the slot
// range, so every band gets its share of chunks and each master holds the
// share of the input that its share of the slots says, within a band.
const (
	clusterSlots = 16384
	spreadBands  = 64
)

// spreadTag returns the hash tag of item i of job id (a chunk, or a blob of
// rejects when kind is "r"): "id:<kind>i" or "id:<kind>i.<salt>", the first
// whose slot is in i's band. It is a pure function of its arguments, so every
// process names the same key. IDs have no ':', so no two jobs share a tag.
func spreadTag(id, kind string, i int) string {
	return bandTag(id+":"+kind+strconv.Itoa(i), i%spreadBands)
}

// bandTag returns base or "base.<salt>", the first whose slot is in band.
// Finding it hashes about spreadBands salted tags, and every outcome recorded
// names a group's keys five times: the answers are kept (see tagCache).
func bandTag(base string, band int) string {
	k := tagKey{base, band}
	if t, ok := tagCache.m.Load(k); ok {
		return t.(string)
	}
	t := findBandTag(base, band)
	if tagCache.n.Add(1) > tagCacheMax {
		// Bounded: the tags of the jobs running now are found again.
		tagCache.m.Clear()
		tagCache.n.Store(0)
	}
	tagCache.m.Store(k, t)
	return t
}

// tagCacheMax bounds the tags kept: a few jobs' groups and chunks.
const tagCacheMax = 1 << 16

type tagKey struct {
	base string
	band int
}

// tagCache holds bandTag's answers (tagKey → string); n counts the stores.
var tagCache struct {
	m sync.Map
	n atomic.Int64
}

func findBandTag(base string, band int) string {
	width := clusterSlots / spreadBands
	lo := band * width
	tag := base
	for salt := 0; salt < 64*spreadBands; salt++ {
		if salt > 0 {
			tag = base + "." + strconv.Itoa(salt)
		}
		if s := int(crc16(tag)) % clusterSlots; s >= lo && s < lo+width {
			return tag
		}
	}
	return base // not reached in practice: each try hits the band with p = 1/64
}

// crc16 is CRC-16/XMODEM, the hash of Redis Cluster's key slots.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^s[i]]
	}
	return crc
}

// crc16Table is CRC-16/XMODEM of each byte value.
var crc16Table = func() (t [256]uint16) {
	for b := range t {
		crc := uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[b] = crc
	}
	return t
}()
