package enqueue

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// input is an opened list and what identifies it.
type input struct {
	r           io.Reader
	name        string
	stream      bool   // stdin or a Reader: no file to identify it by
	jobID       string // the derived job ID
	fingerprint string
	io.Closer
}

func openInput(cfg Config, now time.Time) (*input, error) {
	opts := fmt.Sprintf("column=%q region=%s chunk=%d version=%s", cfg.Column, cfg.DefaultRegion, cfg.ChunkSize, codeVersion())
	in := &input{name: cmp.Or(cfg.Input, "-"), Closer: io.NopCloser(nil)}
	switch {
	case cfg.Reader != nil || cfg.Input == "-":
		in.r, in.stream = cfg.Reader, true
		if in.r == nil {
			in.r = cfg.Stdin
		}
		// A stream cannot be told apart from another one by its name: the
		// fingerprint covers the options only, and Run compares what the
		// stream rebuilds with what the job stored (see earlier).
		in.fingerprint = hexSum("stream", in.name, opts)
		in.jobID = "stdin-" + now.UTC().Format("20060102-150405") + "-" + randHex(4)
		return in, nil
	}
	f, err := os.Open(cfg.Input)
	if err != nil {
		return nil, fmt.Errorf("%w: opening input: %w", ErrConfig, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening input: %w", err)
	}
	if fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%w: input %s is a folder", ErrConfig, cfg.Input)
	}
	abs, _ := filepath.Abs(cfg.Input)
	in.r, in.Closer = f, f
	in.fingerprint = hexSum("file", abs, strconv.FormatInt(fi.Size(), 10), strconv.FormatInt(fi.ModTime().UnixNano(), 10), opts)
	in.jobID = jobName(cfg.Input) + "-" + fi.ModTime().UTC().Format("20060102") + "-" + in.fingerprint[:8]
	return in, nil
}

// jobName makes the start of a derived job ID from a file name: its base
// name without extensions, in the job ID alphabet.
func jobName(path string) string {
	base := filepath.Base(path)
	if i := strings.IndexByte(base, '.'); i > 0 {
		base = base[:i]
	}
	b := []byte(base)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if len(b) == 0 {
		return "list"
	}
	return string(b)
}

func hexSum(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// codeVersion changes when chunks could come out differently from the same
// input: the enqueue rules or the phone number metadata. A job resumed by
// another version would mix chunks of both, so it is refused instead.
func codeVersion() string {
	// 2: a lone CR ends a line, unescaped quotes in quoted fields are text;
	// 3: rejects cells a spreadsheet would run get a leading apostrophe.
	v := "enqueue/3"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/nyaruka/phonenumbers" {
				v += " phonenumbers/" + d.Version
			}
		}
	}
	return v
}

// JobID returns the ID of the job Run makes of cfg: cfg.JobID, or the one
// it derives from the input file; "" for a stream, named anew each run.
func JobID(cfg Config) (string, error) {
	if cfg.JobID != "" || cfg.Reader != nil || cfg.Input == "-" {
		return cfg.JobID, nil
	}
	in, err := openInput(cfg.WithDefaults(), time.Now())
	if err != nil {
		return "", err
	}
	in.Close()
	return in.jobID, nil
}
