package redisconn

import (
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url      string
		kind     Kind
		addrs    []string
		redacted string
		opt      asynq.RedisConnOpt
	}{
		{
			url: "redis://127.0.0.1:6379/0", kind: Single, addrs: []string{"127.0.0.1:6379"},
			redacted: "redis://127.0.0.1:6379/0",
			opt:      asynq.RedisClientOpt{Network: "tcp", Addr: "127.0.0.1:6379"},
		},
		{
			url: "redis://:s3cret@redis.internal:6380/2", kind: Single, addrs: []string{"redis.internal:6380"},
			redacted: "redis://:xxxxx@redis.internal:6380/2",
			opt:      asynq.RedisClientOpt{Network: "tcp", Addr: "redis.internal:6380", Password: "s3cret", DB: 2},
		},
		{
			url: "redis://app:s3cret@redis.internal:6380", kind: Single, addrs: []string{"redis.internal:6380"},
			redacted: "redis://app:xxxxx@redis.internal:6380",
			opt:      asynq.RedisClientOpt{Network: "tcp", Addr: "redis.internal:6380", Username: "app", Password: "s3cret"},
		},
		{
			url: "redis-socket://:s3cret@/run/redis.sock?db=3", kind: Single, addrs: []string{"/run/redis.sock"},
			redacted: "redis-socket://:xxxxx@/run/redis.sock?db=xxxxx",
			opt:      asynq.RedisClientOpt{Network: "unix", Addr: "/run/redis.sock", Password: "s3cret", DB: 3},
		},
		{
			url:  "redis-sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379?master=mymaster",
			kind: Sentinel, addrs: []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"},
			redacted: "redis-sentinel://:xxxxx@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379?master=xxxxx",
			opt: asynq.RedisFailoverClientOpt{
				MasterName: "mymaster", SentinelAddrs: []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"},
				SentinelPassword: "s3cret", Password: "s3cret",
			},
		},
		{
			url: "redis-cluster://10.0.0.1:6379,10.0.0.2:6379", kind: Cluster, addrs: []string{"10.0.0.1:6379", "10.0.0.2:6379"},
			redacted: "redis-cluster://10.0.0.1:6379,10.0.0.2:6379",
			opt:      asynq.RedisClusterClientOpt{Addrs: []string{"10.0.0.1:6379", "10.0.0.2:6379"}},
		},
		{
			url: "redis-cluster://:s3cret@node-1:7000/", kind: Cluster, addrs: []string{"node-1:7000"},
			redacted: "redis-cluster://:xxxxx@node-1:7000/",
			opt:      asynq.RedisClusterClientOpt{Addrs: []string{"node-1:7000"}, Password: "s3cret"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.redacted, func(t *testing.T) {
			t.Parallel()
			u, err := Parse(tt.url)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if u.Kind() != tt.kind {
				t.Errorf("Kind() = %v, want %v", u.Kind(), tt.kind)
			}
			if diff := cmp.Diff(tt.addrs, u.Addrs()); diff != "" {
				t.Errorf("Addrs() (-want +got):\n%s", diff)
			}
			if u.String() != tt.redacted {
				t.Errorf("String() = %q, want %q", u.String(), tt.redacted)
			}
			if diff := cmp.Diff(tt.opt, u.AsynqOpt()); diff != "" {
				t.Errorf("AsynqOpt() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTLS(t *testing.T) {
	t.Parallel()
	u, err := Parse("rediss://:s3cret@cache.example.com:6380/0")
	if err != nil {
		t.Fatal(err)
	}
	opt, ok := u.AsynqOpt().(asynq.RedisClientOpt)
	if !ok || opt.TLSConfig == nil || opt.TLSConfig.ServerName != "cache.example.com" {
		t.Fatalf("AsynqOpt() = %+v, want TLS for cache.example.com", u.AsynqOpt())
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ url, want string }{
		{"", `unknown scheme ""`},
		{"localhost:6379", "unknown scheme"},
		{"http://:s3cret@localhost:6379", `unknown scheme "http"`},
		{"redis://:s3cret@/0", "the host is missing"},
		{"redis://:s3cret@localhost:6379/x", "invalid database number"},
		{"redis://:s3cret@localhost:6379/0?nonsense=1", "unexpected option"},
		{"redis-socket://:s3cret@", "path does not exist"},
		{"redis-sentinel://:s3cret@10.0.0.1:26379", "the master name is missing"},
		{"redis-sentinel://:s3cret@10.0.0.1:26379?master=m&db=2", `unknown parameter "db"`},
		{"redis-sentinel://:s3cret@10.0.0.1:26379/3?master=m", "names no database"},
		{"redis-sentinel://:s3cret@?master=m", "no HOST:PORT given"},
		{"redis-cluster://", "no HOST:PORT given"},
		{"redis-cluster://:s3cret@10.0.0.1:7000,10.0.0.2", "invalid port"},
		{"redis-cluster://:s3cret@10.0.0.1:7000,:7001", `":7001" is not HOST:PORT`},
		{"redis-cluster://:s3cret@10.0.0.1:7000/1", "database 0 only"},
		{"redis-cluster://:s3cret@10.0.0.1:7000?read_only=true", "query parameters are not supported"},
		{"redis://:s3cret@local host:6379", "not a URL"},
		// A password with '?', '/' or '#' not percent-encoded: no part of
		// it is shown (net/url reads its tail as a query, a path or a port).
		{"redis://:12345?s3cret@localhost:6379/0", "percent-encode"},
		{"redis://:s3c/s3cret@localhost:6379", "percent-encode"},
		{"redis://u:s3c#s3cret@localhost:6379", "percent-encode"},
		{"redis-sentinel://:s3c?s3cret@10.0.0.1:26379?master=m", "percent-encode"},
		{"redis-cluster://:s3c/s3cret@10.0.0.1:7000", "percent-encode"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tt.url)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded", tt.url)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) = %v, want an error containing %q", tt.url, err, tt.want)
			}
			if strings.Contains(err.Error(), "s3") || strings.Contains(err.Error(), "cret") {
				t.Errorf("Parse(%q) = %v: the error shows the password", tt.url, err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"redis://:s3cret@127.0.0.1:6379/0",
		"redis-sentinel://:s3cret@a:1,b:2?master=m",
		"redis-cluster://:s3cret@a:1,b:2",
		"redis-socket://:s3cret@/tmp/r.sock?db=1",
		"rediss://u:s3cret@h:1/2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// The password as net/url reads it: neither an error nor String
		// may show the user info that holds it.
		userinfo := "\x00none"
		if pu, err := url.Parse(s); err == nil && pu.User != nil {
			if p, ok := pu.User.Password(); ok && p != "" {
				userinfo = ":" + p + "@"
			}
		}
		u, err := Parse(s)
		if err != nil {
			if strings.Contains(err.Error(), userinfo) {
				t.Errorf("Parse(%q) = %v: the error shows the password", s, err)
			}
			return
		}
		if strings.Contains(u.String(), userinfo) {
			t.Errorf("String() = %q shows the password", u.String())
		}
		if len(u.Addrs()) == 0 {
			t.Errorf("Parse(%q): no address", s)
		}
		_ = u.AsynqOpt()
	})
}
