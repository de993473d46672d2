//go:build !unix

package enqueue

func allocTable(slots int) []byte { return heapTable(slots) }

func freeTable([]byte) {}
