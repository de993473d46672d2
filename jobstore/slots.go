package jobstore

import "strconv"

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
func bandTag(base string, band int) string {
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
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
