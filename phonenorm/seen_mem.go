package phonenorm

import "unsafe"

// tableSlices lays keys (8-byte aligned, first) and rows out in mem, which
// holds 12 bytes per slot and is 8-byte aligned (page-aligned from mmap,
// allocated as []uint64 otherwise).
func tableSlices(mem []byte, slots int) ([]uint64, []uint32) {
	if len(mem) < slots*12 {
		panic("phonenorm: table memory too small") // a bug in allocTable, never input
	}
	keys := unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), slots)
	rows := unsafe.Slice((*uint32)(unsafe.Pointer(&mem[slots*8])), slots)
	return keys, rows
}

// heapTable allocates table memory on the Go heap, 8-byte aligned.
func heapTable(slots int) []byte {
	words := make([]uint64, (slots*12+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
}
