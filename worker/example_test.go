package worker_test

import (
	"fmt"

	"github.com/capcheck/capcheck/worker"
)

func ExampleConfig_WithDefaults() {
	c := worker.Config{BatchSize: 50}.WithDefaults()
	fmt.Println(c.Concurrency, c.BatchSize, c.MaxAttempts, c.ShutdownTimeout, c.OutDir)
	fmt.Println(c.BackoffBase, c.BackoffMax, c.PauseDefault)
	fmt.Println(c.Validate())
	// Output:
	// 16 50 5 30s ./out
	// 500ms 30s 5s
	// <nil>
}
