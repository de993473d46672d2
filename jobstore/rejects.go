package jobstore

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"sync"
)

// Rejects blobs are CSV lines whose text repeats ("duplicate of row",
// "invalid", the same formats): they are stored deflated, about a fifth of
// their size, behind a byte no CSV line starts with. Blobs stored plain
// before are read as they are.
const rejectsDeflated = 0

// deflaters keeps flate writers for reuse: a new one allocates about
// 1 MB, more than the blob it packs.
var deflaters sync.Pool

func packRejects(blob []byte) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(blob)/4 + 16)
	b.WriteByte(rejectsDeflated)
	w, _ := deflaters.Get().(*flate.Writer)
	if w == nil {
		var err error
		if w, err = flate.NewWriter(&b, flate.BestSpeed); err != nil {
			return nil, err
		}
	} else {
		w.Reset(&b)
	}
	defer deflaters.Put(w)
	if _, err := w.Write(blob); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func unpackRejects(b []byte) ([]byte, error) {
	if len(b) == 0 || b[0] != rejectsDeflated {
		return b, nil
	}
	out, err := io.ReadAll(flate.NewReader(bytes.NewReader(b[1:])))
	if err != nil {
		return nil, fmt.Errorf("corrupt rejects blob: %w", err)
	}
	return out, nil
}
