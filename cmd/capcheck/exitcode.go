package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/configs"
)

// Exit codes (README.md, "Exit codes").
const (
	exitOK            = 0 // success
	exitError         = 1 // runtime error
	exitUsage         = 2 // bad usage or configuration; the message says what to fix
	exitFailedNumbers = 3 // the job finished but some numbers ended failed
)

// errFailedNumbers is the outcome "the job finished, but some numbers ended
// failed" (exit code 3). Return a *failedNumbersError, or wrap this.
var errFailedNumbers = errors.New("the job finished, but some numbers ended failed")

// failedNumbersError is errFailedNumbers for one job, with its count.
type failedNumbersError struct {
	Job    string
	Failed int64
	Again  string // how to send them again, if known
}

func (e *failedNumbersError) Error() string {
	msg := fmt.Sprintf("job %s finished, but %d numbers ended failed (status failed in results.csv)", e.Job, e.Failed)
	if e.Again != "" {
		msg += "; " + e.Again
	}
	return msg
}

func (e *failedNumbersError) Is(target error) bool { return target == errFailedNumbers }

// usageErrorf is a bad-usage error (exit code 2). Say what to fix.
func usageErrorf(format string, args ...any) error { return configs.Usagef(format, args...) }

// exitCode maps an action's error to the process's exit code.
func exitCode(err error) int {
	var exitCoder cli.ExitCoder
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, configs.ErrUsage):
		return exitUsage
	case errors.Is(err, errFailedNumbers):
		return exitFailedNumbers
	case errors.As(err, &exitCoder):
		// urfave/cli's own exit errors are usage errors ("No help topic for
		// 'x'" comes with code 3, which means failed numbers here).
		return exitUsage
	}
	return exitError
}

// run runs app and returns the exit code, having printed the error, if any,
// once to app.ErrWriter, each line prefixed with "capcheck: ".
func run(ctx context.Context, app *cli.App, args []string) int {
	app.Metadata = map[string]any{metaSecretArgs: secretArgs(args)}
	err := checkArgs(app.Commands, args)
	if err == nil {
		err = app.RunContext(ctx, interspersed(app.Commands, args))
	}
	if err != nil {
		for line := range strings.Lines(err.Error()) {
			fmt.Fprintf(app.ErrWriter, "capcheck: %s", line)
		}
		fmt.Fprintln(app.ErrWriter)
	}
	return exitCode(err)
}

// onUsageError turns urfave's flag parsing errors into usage errors that say
// what to fix. It is the OnUsageError of the app and of every command.
func onUsageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		msg = "unknown flag " + dashes(name)
	} else if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		msg = "flag " + dashes(name) + " needs a value"
	} else if m := badValue.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("invalid value %s for flag %s: %s", m[1], dashes(m[2]), m[3])
	}
	return usageErrorf("%s; run '%s --help' for the flags", msg, c.Command.HelpName)
}

// badValue matches the flag package's "invalid value "x" for flag -name: why".
var badValue = regexp.MustCompile(`^invalid value (".*") for flag (-\S+): (.*)$`)

// dashes writes a flag as it is documented: -h, --rate.
func dashes(flag string) string {
	name := strings.TrimLeft(flag, "-")
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// rootAction runs for "capcheck" with no command or an unknown one.
func rootAction(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("unknown command %s; run 'capcheck --help' for the commands", shownArg(c, c.Args().First()))
	}
	_ = cli.ShowAppHelp(c)
	return usageErrorf("no command given")
}

// noArgs rejects positional arguments, for commands that take none.
func noArgs(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("%s takes no arguments, got %s; run '%s --help' for the flags",
			c.Command.HelpName, shownArg(c, c.Args().First()), c.Command.HelpName)
	}
	return nil
}

// buildVersion is set at build time (make build: git describe).
var buildVersion string

// version is the version capcheck was built as: buildVersion, else the
// module version with the VCS revision when the build recorded one.
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	if v != "(devel)" {
		return v // a module version or pseudo-version names the revision already
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
