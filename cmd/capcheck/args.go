package main

import (
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
	if len(args) < 3 {
		return args
	}
	cmd := findCommand(cmds, args[1])
	if cmd == nil {
		return args
	}
	// A command with subcommands (memory stats): the same, one level down.
	if len(cmd.Subcommands) > 0 {
		return append([]string{args[0]}, interspersed(cmd.Subcommands, args[1:])...)
	}
	takesValue := flagValues(cmd)
	var flags, positional []string
	rest := args[2:]
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
	out := append([]string{args[0], args[1]}, flags...)
	return append(out, positional...)
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
	return checkArgsOf("capcheck", cmds, args)
}

// checkArgsOf is checkArgs for the commands cmds of the command path.
func checkArgsOf(path string, cmds []*cli.Command, args []string) error {
	if len(args) < 3 {
		return nil
	}
	cmd := findCommand(cmds, args[1])
	if cmd == nil {
		return nil
	}
	if len(cmd.Subcommands) > 0 {
		return checkArgsOf(path+" "+cmd.Name, cmd.Subcommands, args[1:])
	}
	takesValue := flagValues(cmd)
	rest := args[2:]
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
					dashes(name), dashes(name), path+" "+cmd.Name)
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
