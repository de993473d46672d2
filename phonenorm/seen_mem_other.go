//go:build !unix

package phonenorm

func allocTable(slots int) []byte { return heapTable(slots) }

func freeTable([]byte) {}
