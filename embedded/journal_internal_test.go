package embedded

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTrimTornTail(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 100<<10) // longer than trimTornTail's block
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"whole lines", "a\nb\n", "a\nb\n"},
		{"torn last line", "a\nb", "a\n"},
		{"one torn line", "abc", ""},
		{"torn line longer than a block", "a\n" + long, "a\n"},
		{"whole line longer than a block", long + "\n" + "b", long + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "journal.jsonl")
			if err := os.WriteFile(path, []byte(tt.in), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := trimTornTail(f); err != nil {
				t.Fatal(err)
			}
			// Appending goes on after what is kept.
			if _, err := f.WriteString("next\n"); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want+"next\n" {
				t.Errorf("after trim and append: %.40q... (%d bytes), want %d bytes", got, len(got), len(tt.want)+5)
			}
		})
	}
}
