package main

import (
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/configs"
)

// interspersed moves a command's flags before its positional arguments, so
// that "capcheck wait JOB --timeout 1h" works like "capcheck wait --timeout 1h
// JOB": urfave/cli stops reading flags at the first argument. args is
// os.Args; anything after "--" is left as it is.
func interspersed(cmds []*cli.Command, args []string) []string {
	cmd, _, first := leafCommand(cmds, args)
	if cmd == nil {
		return args
	}
	takesValue := flagValues(cmd)
	var flags, positional []string
	rest := args[first:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			positional = append(positional, rest[i:]...)
			i = len(rest)
		case strings.HasPrefix(a, "-") && a != "-":
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(rest) {
				i++
				flags = append(flags, rest[i])
			}
		default:
			positional = append(positional, a)
		}
	}
	out := append(slices.Clone(args[:first]), flags...)
	return append(out, positional...)
}

// leafCommand finds the command args (os.Args) run, one level down for a
// command with subcommands (memory stats): the command, its path
// ("capcheck memory stats") and the index of its first argument. It returns
// a nil command when args name none, or when no argument follows its name.
func leafCommand(cmds []*cli.Command, args []string) (cmd *cli.Command, path string, first int) {
	path = "capcheck"
	for i := 1; i < len(args)-1; i++ {
		if cmd = findCommand(cmds, args[i]); cmd == nil {
			return nil, "", 0
		}
		path += " " + cmd.Name
		if len(cmd.Subcommands) == 0 {
			return cmd, path, i + 1
		}
		cmds = cmd.Subcommands
	}
	return nil, "", 0
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// flagValues maps each flag name of cmd (help included) to whether it takes
// a value.
func flagValues(cmd *cli.Command) map[string]bool {
	takesValue := map[string]bool{"h": false, "help": false}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	return takesValue
}

// flagName is the name of a flag argument ("--api-key=x" is api-key), ""
// when a is not one.
func flagName(a string) string {
	if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
		return ""
	}
	name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
	return name
}

// checkArgs refuses a flag whose value is missing and followed by another
// flag: "--sid $SID --api-key KEY" with SID empty would make "--api-key" the
// SID and leave the key a stray argument. The error names the flag without
// a value, never what follows it.
func checkArgs(cmds []*cli.Command, args []string) error {
	cmd, path, first := leafCommand(cmds, args)
	if cmd == nil {
		return nil
	}
	takesValue := flagValues(cmd)
	rest := args[first:]
	for i := 0; i < len(rest)-1; i++ {
		a := rest[i]
		if a == "--" {
			return nil
		}
		name := flagName(a)
		if name == "" || strings.Contains(a, "=") || !takesValue[name] {
			continue
		}
		if next := flagName(rest[i+1]); next != "" {
			// "--anything" reads as a flag (a value that starts with "--"
			// is written --flag=VALUE), "-x" only when it is one of cmd's.
			if _, known := takesValue[next]; known || strings.HasPrefix(rest[i+1], "--") {
				return usageErrorf("flag %s has no value (the next argument is another flag); "+
					"give it one, or write %s= for an empty value; run '%s --help' for the flags",
					dashes(name), dashes(name), path)
			}
		}
		i++ // the value
	}
	return nil
}

// secretArgs lists the arguments that may be (part of) a secret: the value
// of a flag whose value is hidden (configs.HidesValue), or the argument
// right after such a flag. Messages never echo them.
func secretArgs(args []string) map[string]bool {
	secret := map[string]bool{}
	for i, a := range args {
		name := flagName(a)
		if name == "" || !configs.HidesValue(name) {
			continue
		}
		if _, v, ok := strings.Cut(a, "="); ok && v != "" {
			secret[v] = true
		} else if i+1 < len(args) {
			secret[args[i+1]] = true // its value, or a stray one after "--api-key="
		}
	}
	return secret
}

// metaSecretArgs is the key of secretArgs in the app's Metadata.
const metaSecretArgs = "secretArgs"

// shownArg is how a command-line argument appears in a message: quoted, or
// a placeholder when it may be a secret.
func shownArg(c *cli.Context, a string) string {
	if s, _ := c.App.Metadata[metaSecretArgs].(map[string]bool); s[a] {
		return "(not shown: it follows a flag whose value is secret)"
	}
	return strconv.Quote(a)
}
