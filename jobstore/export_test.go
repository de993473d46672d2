package jobstore

import "time"

// SetClock makes s read the time from now, for tests.
func (s *Store) SetClock(now func() time.Time) { s.now = now }

// ChunkKeyForTest is the key of chunk i's blob, for tests.
func ChunkKeyForTest(id string, i int) string { return chunkKey(id, i) }

// OutKey is the key of chunk i's outcome list, for a job created now.
func OutKey(id string, i int) string { return outKey(id, GroupChunks, i) }

// EncodeOutcome and DecodeOutcomes are the stored form of outcomes.
var (
	EncodeOutcome  = encodeOutcome
	DecodeOutcomes = decodeOutcomes
)

// RejectsKeyForTest is the key of rejects blob k.
func RejectsKeyForTest(id string, k int) string { return rejectsBlobKey(id, k) }
