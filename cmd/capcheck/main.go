// Command capcheck checks which numbers of a phone-number list can receive
// SMS over IP, through the provider's capability-check API: it enqueues a
// list as chunk tasks in Redis, and worker replicas call the API under one
// fleet-wide rate limit and write each number's outcome to files. See
// README.md and docs/design.md.
//
// main only wires: one file per command (cmd_<name>.go) with a constructor
// registered in commands(); exit codes are in exitcode.go.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, newApp(os.Stdout, os.Stderr, commands()), os.Args)
	stop()
	os.Exit(code) // the only os.Exit of capcheck
}

// commands lists capcheck's commands; only commands that work are listed.
func commands() []*cli.Command {
	return []*cli.Command{
		enqueueCommand(),
		runCommand(),
		workerCommand(),
		statusCommand(),
		waitCommand(),
		retryCommand(),
		exportCommand(),
		reportCommand(),
		mockAPICommand(),
		callbacksCommand(),
		memoryCommand(),
	}
}

func newApp(stdout, stderr io.Writer, cmds []*cli.Command) *cli.App {
	for _, c := range cmds {
		c.OnUsageError = onUsageError
	}
	return &cli.App{
		Name:           "capcheck",
		Usage:          "find which phone numbers of a list can receive SMS over IP",
		Version:        version(),
		Commands:       cmds,
		Action:         rootAction,
		OnUsageError:   onUsageError,
		ExitErrHandler: func(*cli.Context, error) {}, // urfave must not os.Exit: run maps errors to codes
		Writer:         stdout,
		ErrWriter:      stderr,
	}
}
