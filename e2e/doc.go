// Package e2e holds capcheck's end-to-end tests. They build the real binary
// (internal/testbin), start a private redis-server, `capcheck mock-api` and
// several `capcheck worker` processes on 127.0.0.1, enqueue a generated list,
// and check the output files row by row against the input: every row once,
// in order, with the status the simulator's rules call for.
//
// Run them with
//
//	go test ./e2e/
//
// The SIGKILL test waits for asynq to re-deliver a dead worker's tasks
// (lease 30 s, then the recoverer's next pass, up to a minute): about a minute
// and a half. -short skips it.
package e2e
