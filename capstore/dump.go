package capstore

import (
	"encoding/binary"
	"strconv"
)

// A bucket as DUMP returns it: one bulk string instead of a reply per field
// and value, which is what makes reading the whole memory cheap for the
// client. The payload is the bucket's RDB serialization, then 2 bytes of RDB
// version and 8 of CRC64 (not checked: the server is trusted as for every
// other reply). Only the encoding Redis 7 and later use for a small hash is
// parsed, a listpack (RDB type 16) stored raw or LZF-compressed; anything
// else is read with HGETALL instead.
const (
	rdbTypeHashListpack = 16
	dumpTrailer         = 10
)

// parseDump appends bucket's records to rs (per record its field's 40 bits,
// then its value as recordValue packs it) and reports whether it knew the
// payload's encoding.
func parseDump(payload string, rs []uint64) ([]uint64, bool) {
	if len(payload) < 1+dumpTrailer || payload[0] != rdbTypeHashListpack {
		return rs, false
	}
	lp, ok := rdbString(payload[1 : len(payload)-dumpTrailer])
	if !ok {
		return rs, false
	}
	return parseListpack(lp, rs)
}

// rdbString is the RDB string at the start of b: a length and the bytes, or
// the LZF-compressed form (0xC3, compressed length, length, data).
func rdbString(b string) (string, bool) {
	if len(b) == 0 {
		return "", false
	}
	if b[0] != 0xc3 {
		n, rest, ok := rdbLen(b)
		if !ok || uint64(len(rest)) < n {
			return "", false
		}
		return rest[:n], true
	}
	clen, rest, ok := rdbLen(b[1:])
	if !ok {
		return "", false
	}
	ulen, rest, ok := rdbLen(rest)
	if !ok || uint64(len(rest)) < clen || ulen > 1<<24 {
		return "", false
	}
	out, ok := lzfDecompress(rest[:clen], make([]byte, 0, ulen))
	return string(out), ok && uint64(len(out)) == ulen
}

// rdbLen reads an RDB length (not a special encoding).
func rdbLen(b string) (uint64, string, bool) {
	if len(b) == 0 {
		return 0, "", false
	}
	switch b[0] >> 6 {
	case 0:
		return uint64(b[0] & 0x3f), b[1:], true
	case 1:
		if len(b) < 2 {
			return 0, "", false
		}
		return uint64(b[0]&0x3f)<<8 | uint64(b[1]), b[2:], true
	}
	switch {
	case b[0] == 0x80 && len(b) >= 5:
		return uint64(binary.BigEndian.Uint32([]byte(b[1:5]))), b[5:], true
	case b[0] == 0x81 && len(b) >= 9:
		return binary.BigEndian.Uint64([]byte(b[1:9])), b[9:], true
	}
	return 0, "", false
}

// lzfDecompress appends to out what LZF compressed into in (liblzf's
// format: a control byte below 32 starts a literal run of it + 1 bytes;
// above, a back reference of length ctrl>>5 + 2, or 7 + next byte + 2).
func lzfDecompress(in string, out []byte) ([]byte, bool) {
	for i := 0; i < len(in); {
		ctrl := int(in[i])
		i++
		if ctrl < 32 {
			if i+ctrl+1 > len(in) || len(out)+ctrl+1 > cap(out) {
				return out, false
			}
			out = append(out, in[i:i+ctrl+1]...)
			i += ctrl + 1
			continue
		}
		n := ctrl >> 5
		if n == 7 {
			if i >= len(in) {
				return out, false
			}
			n += int(in[i])
			i++
		}
		if i >= len(in) {
			return out, false
		}
		ref := len(out) - (ctrl&0x1f)<<8 - int(in[i]) - 1
		i++
		n += 2
		if ref < 0 || len(out)+n > cap(out) {
			return out, false
		}
		for k := range n { // the reference may overlap what it writes
			out = append(out, out[ref+k])
		}
	}
	return out, true
}

// parseListpack appends a listpack hash's records (field, value, field,
// value...) to rs. Redis keeps a string that reads as an integer as that
// integer: it is turned back into its decimal digits, which are the
// original bytes.
func parseListpack(lp string, rs []uint64) ([]uint64, bool) {
	if len(lp) < 7 || binary.LittleEndian.Uint32([]byte(lp[:4])) != uint32(len(lp)) {
		return rs, false
	}
	p := lp[6:]
	var field string
	var digits [24]byte
	for odd := false; ; odd = !odd {
		if len(p) == 0 {
			return rs, false
		}
		if p[0] == 0xff {
			return rs, !odd && len(p) == 1
		}
		s, rest, ok := listpackEntry(p, digits[:0])
		if !ok {
			return rs, false
		}
		p = rest
		if !odd {
			field = s
			continue
		}
		if len(field) == 5 && len(s) <= 255 { // else not a record
			rs = append(rs, fieldBits(field), recordValue(s))
		}
	}
}

// listpackEntry reads the entry at the start of p (its encoding, data and
// back length) as a string; integers are written into buf.
func listpackEntry(p string, buf []byte) (string, string, bool) {
	var n, size int // string length; or integer data bytes
	var v int64
	b := p[0]
	switch {
	case b < 0x80: // 7-bit unsigned
		v, size = int64(b), 1
	case b&0xc0 == 0x80: // string, 6-bit length
		n, size = int(b&0x3f), 1
	case b&0xe0 == 0xc0: // 13-bit signed
		if len(p) < 2 {
			return "", "", false
		}
		v, size = int64(int16(uint16(b&0x1f)<<11|uint16(p[1])<<3)>>3), 2
	case b&0xf0 == 0xe0: // string, 12-bit length
		if len(p) < 2 {
			return "", "", false
		}
		n, size = int(b&0x0f)<<8|int(p[1]), 2
	case b == 0xf0: // string, 32-bit length
		if len(p) < 5 {
			return "", "", false
		}
		n, size = int(binary.LittleEndian.Uint32([]byte(p[1:5]))), 5
	case b >= 0xf1 && b <= 0xf4: // 16, 24, 32, 64-bit signed
		w := []int{2, 3, 4, 8}[b-0xf1]
		if len(p) < 1+w {
			return "", "", false
		}
		var u uint64
		for i := w; i >= 1; i-- {
			u = u<<8 | uint64(p[i])
		}
		v, size = int64(u<<(64-8*w))>>(64-8*w), 1+w
	default:
		return "", "", false
	}
	var s string
	if b&0xc0 == 0x80 || b&0xf0 == 0xe0 || b == 0xf0 {
		if n < 0 || len(p) < size+n {
			return "", "", false
		}
		s, size = p[size:size+n], size+n
	} else {
		s = string(strconv.AppendInt(buf, v, 10))
	}
	back := backLen(size)
	if len(p) < size+back {
		return "", "", false
	}
	return s, p[size+back:], true
}

// backLen is how many bytes a listpack entry of size bytes ends with.
func backLen(size int) int {
	switch {
	case size < 1<<7:
		return 1
	case size < 1<<14:
		return 2
	case size < 1<<21:
		return 3
	case size < 1<<28:
		return 4
	}
	return 5
}

// fieldBits is a 5-byte field as the integer of its bytes, big-endian.
func fieldBits(f string) uint64 {
	return uint64(f[0])<<32 | uint64(f[1])<<24 | uint64(f[2])<<16 | uint64(f[3])<<8 | uint64(f[4])
}

// recordValue packs a stored record: its length above bit 48, its first 6
// bytes big-endian below (a 4-byte record's reason bytes are zero), as
// unpackRecord reads them.
func recordValue(v string) uint64 {
	var b [8]byte
	copy(b[2:], v)
	return uint64(len(v))<<48 | binary.BigEndian.Uint64(b[:])&(1<<48-1)
}
