package enqueue

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/capcheck/capcheck/jobstore"
)

// TestEarlier checks the rules by which a resumed run tells its input from
// the one an earlier run stored part of (see earlier).
func TestEarlier(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	chunk := func(i int) []jobstore.Entry {
		return []jobstore.Entry{{Row: int64(2*i + 1), Number: fmt.Sprintf("+9198765%05d", i), Input: "x"}}
	}
	blob := func(k int) []byte { return fmt.Appendf(nil, "%d,n/a,invalid\n", 1000+k) }
	// An earlier run of the list chunk 0, blob 0, chunk 1, blob 1, chunk 2,
	// chunk 3 stored up to chunk 1, blob 1 and (with atMark) chunk 2.
	store := func(t *testing.T, job string, atMark bool) *earlier {
		t.Helper()
		for i := range 2 {
			if err := b.store.PutChunk(ctx, job, i, chunk(i)); err != nil {
				t.Fatal(err)
			}
			if err := b.store.PutRejects(ctx, job, i, blob(i)); err != nil {
				t.Fatal(err)
			}
		}
		if atMark {
			if err := b.store.PutChunk(ctx, job, 2, chunk(2)); err != nil {
				t.Fatal(err)
			}
		}
		e, err := resumeOf(ctx, b.store, &jobstore.Job{Spec: jobstore.Spec{ID: job}, ChunksEnqueued: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.close)
		return e
	}
	type step struct {
		chunk, blob int // the op: a chunk, or with chunk -1 a blob; -2: the end, with blob the chunks
		alt         bool
	}
	c := func(i int) step { return step{chunk: i} }
	bl := func(k int) step { return step{chunk: -1, blob: k} }
	end := func(chunks int) step { return step{chunk: -2, blob: chunks} }
	for _, tt := range []struct {
		name    string
		atMark  bool
		steps   []step
		stored  []bool // of each op that succeeds
		wantErr string // of the last step; "" when all succeed
	}{
		{"the same input", true, []step{c(0), bl(0), c(1), bl(1), c(2), c(3), end(4)},
			[]bool{true, true, true, true, false, false}, ""},
		{"the same input, not stored past the mark", false, []step{c(0), bl(0), c(1), bl(1), c(2), bl(2), end(3)},
			[]bool{true, true, true, true, false, false}, ""},
		{"a stored chunk differs", true, []step{c(0), {chunk: 1, alt: true}},
			[]bool{true}, "valid numbers of chunk 1"},
		{"the chunk past the mark differs", true, []step{c(0), bl(0), c(1), bl(1), {chunk: 2, alt: true}},
			[]bool{true, true, true, true}, "valid numbers of chunk 2"},
		{"a stored blob differs", true, []step{c(0), {chunk: -1, blob: 0, alt: true}},
			[]bool{true}, "rejects block 0"},
		{"a new blob before the stored chunks", true, []step{c(0), bl(0), c(1), bl(1), bl(2)},
			[]bool{true, true, true, true}, "rejects block 2 comes before chunk 2"},
		{"a new chunk before the stored blobs", false, []step{c(0), bl(0), c(1), c(2)},
			[]bool{true, true, true}, "rejects block 1 comes after chunk 2"},
		{"fewer chunks", true, []step{c(0), bl(0), c(1), bl(1), end(2)},
			[]bool{true, true, true, true}, "fewer valid numbers"},
		{"fewer blobs", false, []step{c(0), bl(0), c(1), end(2)},
			[]bool{true, true, true}, "fewer rejects"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := store(t, strings.ReplaceAll(tt.name, " ", "-"), tt.atMark)
			var stored []bool
			var err error
			for _, s := range tt.steps {
				var st bool
				switch s.chunk {
				case -2:
					err = e.end(s.blob)
				case -1:
					data := blob(s.blob)
					if s.alt {
						data = []byte("1,other,invalid\n")
					}
					st, err = e.blob(s.blob, data)
				default:
					entries := chunk(s.chunk)
					if s.alt {
						entries[0].Input = "other"
					}
					st, err = e.chunk(ctx, s.chunk, entries)
				}
				if err != nil {
					break
				}
				if s.chunk != -2 {
					stored = append(stored, st)
				}
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (!errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if fmt.Sprint(stored) != fmt.Sprint(tt.stored) {
				t.Errorf("stored = %v, want %v", stored, tt.stored)
			}
		})
	}
}
