package jobstore

import "testing"

// Redis's own examples of key slots (CLUSTER KEYSLOT).
func TestCRC16(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]int{"123456789": 12739, "foo": 12182, "bar": 5061} {
		if got := int(crc16(key)) % clusterSlots; got != want {
			t.Errorf("slot of %q = %d, want %d", key, got, want)
		}
	}
}

// masterOf returns which of three masters owns slot with redis-cli
// --cluster create's ranges.
func masterOf(slot int) int {
	switch {
	case slot <= 5460:
		return 0
	case slot <= 10922:
		return 1
	}
	return 2
}

// Chunk tags fall evenly on the slot bands: a master owning a third of the
// slots in one range gets a third of the chunks, within a band.
func TestSpreadTagEven(t *testing.T) {
	t.Parallel()
	const chunks = 200
	masters := [3]int{}
	seen := map[string]bool{}
	for i := range chunks {
		tag := spreadTag("list-2026-11-30", "c", i)
		if seen[tag] {
			t.Fatalf("tag %q twice", tag)
		}
		seen[tag] = true
		slot := int(crc16(tag)) % clusterSlots
		if band := slot / (clusterSlots / spreadBands); band != i%spreadBands {
			t.Errorf("chunk %d: slot %d in band %d, want %d", i, slot, band, i%spreadBands)
		}
		masters[masterOf(slot)]++
	}
	for m, n := range masters {
		if share := float64(n) / chunks; share > 0.36 {
			t.Errorf("master %d holds %d of %d chunks (%.1f%%)", m, n, chunks, 100*share)
		}
	}
	if got, again := spreadTag("j", "r", 5), spreadTag("j", "r", 5); got != again {
		t.Errorf("spreadTag is not a function of its arguments: %q, %q", got, again)
	}
}

// The groups of a job fall evenly on three masters' slot ranges, whatever
// the job's number of groups, from a few dozen on.
func TestGroupTagsEven(t *testing.T) {
	t.Parallel()
	for _, n := range []int{32, 50, 63, 125, 200, 1250} {
		masters := [3]int{}
		seen := map[int]bool{}
		for g := range n {
			slot := int(crc16(groupTag("list-2026-11-30", g))) % clusterSlots
			if g < spreadBands && seen[slot/(clusterSlots/spreadBands)] {
				t.Fatalf("%d groups: group %d in a band taken already", n, g)
			}
			seen[slot/(clusterSlots/spreadBands)] = true
			masters[masterOf(slot)]++
		}
		for m, k := range masters {
			if share := float64(k) / float64(n); share > 0.375 {
				t.Errorf("%d groups: master %d holds %d (%.1f%%)", n, m, k, 100*share)
			}
		}
	}
	if groupTag("j", -1) != "j" {
		t.Errorf("groupTag(j, -1) = %q, want the job's own tag", groupTag("j", -1))
	}
}
