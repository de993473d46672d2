//go:build unix

package phonenorm

import "syscall"

// allocTable returns zeroed memory for a table of slots, mapped outside the
// Go heap so that the GC's heap goal does not grow with it (see Set).
// It falls back to the heap if the kernel refuses the mapping.
func allocTable(slots int) []byte {
	if slots*12 < mmapMin {
		return heapTable(slots) // small tables: not worth a system call
	}
	mem, err := syscall.Mmap(-1, 0, slots*12, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return heapTable(slots)
	}
	return mem
}

// freeTable unmaps memory from allocTable. syscall.Munmap only unmaps what
// syscall.Mmap mapped (it keeps a registry and returns EINVAL for anything
// else), so heap tables are safe here too, and left to the GC.
func freeTable(mem []byte) {
	if len(mem) >= mmapMin {
		_ = syscall.Munmap(mem)
	}
}

// mmapMin is the size from which a table is mapped outside the heap: the 64
// shards of a set keep at most 16 MiB on the heap.
const mmapMin = 256 << 10
