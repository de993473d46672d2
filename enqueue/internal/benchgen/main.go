// Command benchgen writes a CSV list of phone numbers for benchmarks: mobile
// numbers of ten countries written in several ways (E.164, spaced, national
// with a trunk prefix for the default region IN), 10% duplicates and 0.5%
// invalid values, in a file with a few other columns.
//
//	go run ./enqueue/internal/benchgen -rows 1000000 -out /tmp/list.csv
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"

	"github.com/capcheck/capcheck/internal/numgen"
)

func main() {
	rows := flag.Int("rows", 1_000_000, "data rows to write")
	out := flag.String("out", "list.csv", "file to write")
	seed := flag.Uint64("seed", 1, "random seed: the same seed writes the same file")
	flag.Parse()
	if err := write(*out, *rows, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "benchgen:", err)
		os.Exit(1)
	}
}

func write(path string, rows int, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	g := numgen.New(seed)
	cities := []string{"Mumbai", "Delhi", "\"Bengaluru, KA\"", "London", "Berlin", "São Paulo", "Lagos"}
	w.WriteString("id,name,phone,city\n")
	var b []byte
	for i := 1; i <= rows; i++ {
		b = strconv.AppendInt(b[:0], int64(i), 10)
		b = append(b, ",Customer "...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ',')
		b = append(b, g.Next()...)
		b = append(b, ',')
		b = append(b, cities[i%len(cities)]...)
		b = append(b, '\n')
		w.Write(b)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
