//go:build unix

package enqueue

import "syscall"

// allocTable returns zeroed memory for a table of slots, mapped outside the
// Go heap so that the GC's heap goal does not grow with it (see seenSet).
// It falls back to the heap if the kernel refuses the mapping.
func allocTable(slots int) []byte {
	mem, err := syscall.Mmap(-1, 0, slots*12, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return heapTable(slots)
	}
	return mem
}

// freeTable unmaps memory from allocTable. syscall.Munmap only unmaps what
// syscall.Mmap mapped (it keeps a registry and returns EINVAL for anything
// else), so the heap fallback is safe here and left to the GC.
func freeTable(mem []byte) {
	if len(mem) > 0 {
		_ = syscall.Munmap(mem)
	}
}
