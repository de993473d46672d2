package configs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/capcheck/capcheck/internal/redact"
)

// Why a hand-rolled loader and not urfave/cli's altsrc: altsrc applies file
// values in a Before hook and skips a flag when its EnvVars are set, which
// gets flag > env > file right only for the flag types it knows; it reads
// YAML keys named like the flags ("api-url", "mock_api.rate" as a dotted
// flag name), ignores unknown keys silently (a typo'd key would be a silent
// default), fetches http:// "files", and cannot say where a bad value came
// from. Here one function decides each option's source in one place:
//
//	flag on the command line > CAPCHECK_* variable > key in --config file > default
//
// and every value, whatever its source, goes through the same parser and
// gets a message naming that source and every way to fix it.

// sourceKind is the kind of place a value came from.
type sourceKind int

// Sources, in increasing precedence.
const (
	sourceDefault sourceKind = iota
	sourceFile
	sourceEnv
	sourceFlag
)

// origin is where one value came from, in words for messages.
type origin struct {
	source sourceKind
	where  string // "--rate", "CAPCHECK_RATE", "rate: in c.yaml line 3"
}

// maxKeyFileSize bounds --api-key-file, so that a wrong path (a log, a
// device) fails fast.
const maxKeyFileSize = 64 << 10

// Load reads the options the command of c accepts (its flags and those of
// its parents) from the command line, the environment and the --config
// file, with the precedence flag > environment > file > default. An
// environment variable set to "" counts as unset. Options the command does
// not accept keep their defaults, whatever the environment or file says;
// an unknown key in the file is an error all the same.
//
// Errors match ErrUsage and say what to fix. Load checks each value's type
// (a number, a duration, one of a set); call [Config.Validate] for ranges,
// relations and required options.
func Load(c *cli.Context) (*Config, error) {
	return load(c, os.LookupEnv)
}

type loader struct {
	lookupEnv func(string) (string, bool)
	filePath  string
	file      map[*option]fileValue
}

type fileValue struct {
	value string
	line  int
}

// declared is an option the command accepts, with the context that parsed it.
type declared struct {
	opt *option
	ctx *cli.Context
}

func load(c *cli.Context, lookupEnv func(string) (string, bool)) (*Config, error) {
	l := &loader{lookupEnv: lookupEnv}
	cfg := Defaults()
	cfg.origins = map[*option]origin{}
	opts := declaredOptions(c)

	var errs []error
	for _, d := range opts {
		if d.opt != optConfig {
			continue
		}
		if v, org, ok := l.resolve(d); ok {
			cfg.ConfigFile, cfg.origins[optConfig] = v, org
			file, err := readFile(v)
			if err != nil {
				return nil, err
			}
			l.filePath, l.file = v, file
		}
	}

	for _, d := range opts {
		if d.opt == optConfig {
			continue
		}
		v, org, ok := l.resolve(d)
		if !ok {
			continue
		}
		if err := d.opt.set(cfg, v); err != nil {
			errs = append(errs, newError(d.opt, err.Error(), show(d.opt, v), org))
			continue
		}
		cfg.origins[d.opt] = org
	}
	if err := resolveKey(cfg); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.RedisExplicit = cfg.origins[optRedis].source != sourceDefault
	cfg.OutExplicit = cfg.origins[optOut].source != sourceDefault
	return cfg, nil
}

// declaredOptions lists the options whose flags c's command or its parents
// declare, in table order.
func declaredOptions(c *cli.Context) []declared {
	byOpt := map[*option]declared{}
	for _, ctx := range c.Lineage() {
		if ctx.Command == nil {
			continue
		}
		for _, f := range ctx.Command.Flags {
			if of, ok := f.(*optionFlag); ok {
				if _, seen := byOpt[of.opt]; !seen {
					byOpt[of.opt] = declared{opt: of.opt, ctx: ctx}
				}
			}
		}
	}
	var ds []declared
	for _, o := range options {
		if d, ok := byOpt[o]; ok {
			ds = append(ds, d)
		}
	}
	return ds
}

// resolve is the precedence rule: flag > environment > file.
func (l *loader) resolve(d declared) (string, origin, bool) {
	o := d.opt
	if d.ctx.IsSet(o.name) {
		return strings.TrimSpace(d.ctx.String(o.name)), origin{sourceFlag, "--" + o.name}, true
	}
	if v, ok := l.lookupEnv(o.env()); ok && v != "" {
		return strings.TrimSpace(v), origin{sourceEnv, o.env()}, true
	}
	if fv, ok := l.file[o]; ok {
		where := fmt.Sprintf("%s in %s line %d", o.fileKey(), l.filePath, fv.line)
		return strings.TrimSpace(fv.value), origin{sourceFile, where}, true
	}
	return "", origin{}, false
}

// resolveKey settles --api-key against --api-key-file, and
// --callback-token against --callback-token-file: the one from the stronger
// source wins; both from the same kind of source is an error.
func resolveKey(cfg *Config) error {
	return errors.Join(
		resolveSecretFile(cfg, optAPIKey, optAPIKeyFile, "an API key", &cfg.API.Key, &cfg.API.KeyFile),
		resolveSecretFile(cfg, optCallbackToken, optCallbackTokenFile, "a callback token", &cfg.Callback.Token, &cfg.Callback.TokenFile))
}

func resolveSecretFile(cfg *Config, keyOpt, fileOpt *option, what string, key *Secret, file *string) error {
	keyOrg, hasKey := cfg.origins[keyOpt]
	fileOrg, hasFile := cfg.origins[fileOpt]
	switch {
	case !hasFile:
		return nil
	case hasKey && keyOrg.source == fileOrg.source:
		return &Error{Option: keyOpt.name, Msg: fmt.Sprintf(
			"both %s (%s) and %s file (%s) are set; keep one of them",
			what, keyOrg.where, what, fileOrg.where)}
	case hasKey && keyOrg.source > fileOrg.source:
		*file = ""
		delete(cfg.origins, fileOpt)
		return nil
	}
	v, err := readKeyFile(*file)
	if err != nil {
		return newError(fileOpt, err.Error(), "", fileOrg)
	}
	*key = v
	cfg.origins[keyOpt] = fileOrg
	return nil
}

func readKeyFile(path string) (Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return Secret{}, fmt.Errorf("names a file that cannot be read (%q: %v)", path, pathErrReason(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	switch {
	case err != nil:
		return Secret{}, fmt.Errorf("names a file that cannot be read (%q: %v)", path, pathErrReason(err))
	case len(data) > maxKeyFileSize:
		return Secret{}, fmt.Errorf("names a file larger than %d KiB (%q); it should hold only the key", maxKeyFileSize>>10, path)
	}
	key := strings.TrimSpace(string(data))
	if key == "" {
		return Secret{}, fmt.Errorf("names an empty file (%q); it should hold the key", path)
	}
	return NewSecret(key), nil
}

// pathErrReason drops the path from an *fs.PathError ("open x: no such
// file" becomes "no such file"), since messages name the path themselves.
func pathErrReason(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readFile parses the YAML config file into values per option. Every
// problem in the file is reported, each with its line.
func readFile(path string) (map[*option]fileValue, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Option: FlagConfig, Msg: fmt.Sprintf(
			"--config: cannot read %q: %v; %s to a readable YAML file", path, pathErrReason(err), optConfig.hint())}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Error{Option: FlagConfig, Msg: fmt.Sprintf("config file %s is not valid YAML: %v",
			path, strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	values := map[*option]fileValue{}
	if len(doc.Content) == 0 {
		return values, nil // empty file
	}
	p := &fileParser{path: path, values: values}
	p.mapping(doc.Content[0], "")
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return values, nil
}

type fileParser struct {
	path   string
	values map[*option]fileValue
	errs   []error
}

func (p *fileParser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, &Error{Option: FlagConfig, Msg: fmt.Sprintf("config file %s line %d: ", p.path, line) +
		fmt.Sprintf(format, args...)})
}

func (p *fileParser) mapping(n *yaml.Node, section string) {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "mock_api:" with nothing under it, or an empty document
	}
	if n.Kind != yaml.MappingNode {
		if section == "" {
			p.errorf(n.Line, "the file must be a mapping of keys to values (key: value)")
		} else {
			p.errorf(n.Line, "%s: must be a mapping of keys to values", section)
		}
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		key := k.Value
		if seen[key] {
			p.errorf(k.Line, "key %q appears twice%s", key, under(section))
			continue
		}
		seen[key] = true
		if section == "" && (key == mockSection || key == reportSection) {
			p.mapping(v, key)
			continue
		}
		o := lookupKey(section, key)
		if o == nil {
			p.errorf(k.Line, "unknown key %q%s%s; the keys are listed in configs/capcheck.example.yaml",
				key, under(section), keyAdvice(section, key))
			continue
		}
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			// "key:" with no value: unset, the default applies.
		case v.Kind == yaml.ScalarNode:
			p.values[o] = fileValue{value: v.Value, line: v.Line}
		default:
			p.errorf(v.Line, "%s must be a single value, not a list or a mapping", o.fileKey())
		}
	}
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return deref(n.Content[0])
	}
	return n
}

func under(section string) string {
	if section == "" {
		return ""
	}
	return " under " + section + ":"
}

func lookupKey(section, key string) *option {
	for _, o := range options {
		if !o.noFile && o.section == section && o.key() == key {
			return o
		}
	}
	return nil
}

// keyAdvice guesses what an unknown key meant.
func keyAdvice(section, key string) string {
	if o := lookupKey(section, strings.ReplaceAll(key, "-", "_")); o != nil {
		return fmt.Sprintf(" (keys use _, not -: %s)", o.key())
	}
	other := ""
	if section == "" {
		other = mockSection
	}
	if o := lookupKey(other, key); o != nil {
		if other == "" {
			return fmt.Sprintf(" (%s is a top-level key, not a %s: one)", key, section)
		}
		return fmt.Sprintf(" (mock-api options go under %s:)", mockSection)
	}
	return ""
}

// newError is a problem with one option's value:
//
//	--rate must be > 0 (got -1 from CAPCHECK_RATE); set --rate, CAPCHECK_RATE or rate: in the config file
func newError(o *option, problem, value string, org origin) *Error {
	var got []string
	if value != "" {
		got = append(got, "got "+value)
	}
	if org.source == sourceEnv || org.source == sourceFile {
		got = append(got, "from "+org.where)
	}
	msg := "--" + o.name + " " + problem
	if len(got) > 0 {
		msg += " (" + strings.Join(got, " ") + ")"
	}
	return &Error{Option: o.name, Msg: msg + "; " + o.hint()}
}

// show is how a value appears in a message: secrets never, URLs without
// their password, empty or spaced strings quoted.
func show(o *option, v string) string {
	switch {
	case o.secret:
		return redacted
	case o.url:
		return redact.URL(v)
	case v == "" || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == '"' }):
		return fmt.Sprintf("%q", v)
	}
	return v
}
