package configs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const testKey = "S3CR3T-KEY-123"

func TestSecretRedaction(t *testing.T) {
	s := NewSecret(testKey)
	cfg := defaults()
	cfg.API.Key = s
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v", "%10s", "%-v"} {
		outputs = append(outputs,
			fmt.Sprintf(verb, s), fmt.Sprintf(verb, &s),
			fmt.Sprintf(verb, cfg), fmt.Sprintf(verb, *cfg), fmt.Sprintf(verb, cfg.API))
	}
	outputs = append(outputs, fmt.Sprint(s), fmt.Sprintln(cfg), s.String(), s.GoString())

	for _, newHandler := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		log := slog.New(newHandler(&b))
		log.Info("config", "key", s, "config", cfg, "api", cfg.API, slog.Any("ptr", &s))
		log.With("key", s).Info("with", slog.Group("g", "key", s))
		outputs = append(outputs, b.String())
	}

	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(j), string(y))

	for _, out := range outputs {
		if strings.Contains(out, testKey) || strings.Contains(out, fmt.Sprintf("%x", testKey)) {
			t.Errorf("secret shown in %q", out)
		}
	}
	if !strings.Contains(string(j), `"Key":"[redacted]"`) {
		t.Errorf("json.Marshal(Config) = %s; want the key as \"[redacted]\"", j)
	}
	if got := fmt.Sprintf("%v|%q", s, s); got != `[redacted]|"[redacted]"` {
		t.Errorf("got %s", got)
	}
	if s.Reveal() != testKey || s.IsZero() || !NewSecret("").IsZero() || !s.Equal(NewSecret(testKey)) {
		t.Error("Reveal, IsZero or Equal do not see the value")
	}
}
