package redisconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/internal/redact"
)

// Kind is the topology a URL names.
type Kind int

// Topologies.
const (
	// Single is one Redis server: redis://, rediss:// or redis-socket://.
	Single Kind = iota
	// Sentinel is a master found through Redis Sentinel: redis-sentinel://.
	Sentinel
	// Cluster is a Redis Cluster: redis-cluster://.
	Cluster
)

func (k Kind) String() string {
	switch k {
	case Sentinel:
		return "sentinel"
	case Cluster:
		return "cluster"
	}
	return "single"
}

// Forms lists the URL forms Parse accepts, for messages.
const Forms = "redis://, rediss://, redis-socket://PATH, redis-sentinel://HOST:PORT[,...]?master=NAME, " +
	"redis-cluster://HOST:PORT[,...]"

// URL is a parsed --redis URL: the Redis it names and how to reach it.
type URL struct {
	kind     Kind
	redacted string
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// Parse parses a Redis URL in one of the forms of asynq's ParseRedisURI
// (redis://, rediss://, redis-socket://, redis-sentinel://) or
// redis-cluster://HOST:PORT[,HOST:PORT...] for Redis Cluster.
//
// The password of a redis-sentinel:// URL is sent to the sentinels and to
// the master (asynq sends it to the sentinels only, which leaves no way to
// reach a master that has a password). Errors never hold the password.
func Parse(raw string) (*URL, error) {
	if MisplacedAt(raw) {
		// net/url would read part of the password as a port, a path or
		// a query, and its errors (and ours) would show it.
		return nil, errors.New("an '@' after the host: percent-encode '/', '?', '#' and '@' in a password (%2F, %3F, %23, %40)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a password
		}
		return nil, fmt.Errorf("not a URL: %v", err)
	}
	r := &URL{redacted: redact.URL(raw)}
	switch u.Scheme {
	case "redis", "rediss":
		err = r.parseSingle(u)
	case "redis-socket":
		err = r.parseSocket(raw)
	case "redis-sentinel":
		err = r.parseSentinel(u)
	case "redis-cluster":
		err = r.parseCluster(u)
	default:
		err = fmt.Errorf("unknown scheme %q", u.Scheme)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (r *URL) parseSingle(u *url.URL) error {
	if u.Host == "" {
		return errors.New("the host is missing")
	}
	c := *u
	c.User = nil // parsed below, so that an error cannot show the password
	opt, err := redis.ParseURL(c.String())
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "redis: "))
	}
	opt.Username, opt.Password = userPassword(u)
	r.kind, r.single = Single, opt
	return nil
}

func (r *URL) parseSocket(raw string) error {
	opt, err := asynq.ParseRedisURI(raw)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "asynq: "))
	}
	o, ok := opt.(asynq.RedisClientOpt)
	if !ok {
		return fmt.Errorf("unexpected option type %T", opt)
	}
	r.kind = Single
	r.single = &redis.Options{Network: o.Network, Addr: o.Addr, Password: o.Password, DB: o.DB}
	return nil
}

func (r *URL) parseSentinel(u *url.URL) error {
	addrs, err := hostList(u.Host)
	if err != nil {
		return err
	}
	q := u.Query()
	master := q.Get("master")
	if master == "" {
		return errors.New("the master name is missing: add ?master=NAME (the name the sentinels monitor)")
	}
	for k := range q {
		if k != "master" {
			return fmt.Errorf("unknown parameter %q (only master=NAME is read)", k)
		}
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		return fmt.Errorf("unexpected path %q (a sentinel URL names no database)", u.Path)
	}
	user, pass := userPassword(u)
	r.kind = Sentinel
	r.failover = &redis.FailoverOptions{
		MasterName:       master,
		SentinelAddrs:    addrs,
		SentinelUsername: user,
		SentinelPassword: pass,
		Username:         user,
		Password:         pass,
	}
	return nil
}

func (r *URL) parseCluster(u *url.URL) error {
	addrs, err := hostList(u.Host)
	if err != nil {
		return err
	}
	if u.RawQuery != "" {
		return errors.New("query parameters are not supported")
	}
	if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
		return fmt.Errorf("unexpected path %q (Redis Cluster has database 0 only)", u.Path)
	}
	user, pass := userPassword(u)
	r.kind = Cluster
	r.cluster = &redis.ClusterOptions{Addrs: addrs, Username: user, Password: pass}
	return nil
}

// hostList splits "HOST:PORT,HOST:PORT" and checks each address.
func hostList(s string) ([]string, error) {
	if s == "" {
		return nil, errors.New("no HOST:PORT given")
	}
	addrs := strings.Split(s, ",")
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("%q is not HOST:PORT", a)
		}
	}
	return addrs, nil
}

func userPassword(u *url.URL) (user, pass string) {
	if u.User == nil {
		return "", ""
	}
	pass, _ = u.User.Password()
	return u.User.Username(), pass
}

// Kind returns the topology the URL names.
func (r *URL) Kind() Kind { return r.kind }

// String returns the URL with its password replaced by "xxxxx", for logs
// and messages.
func (r *URL) String() string { return r.redacted }

// Addrs returns the addresses the URL names: the server, the sentinels or
// the cluster nodes given.
func (r *URL) Addrs() []string {
	switch r.kind {
	case Sentinel:
		return r.failover.SentinelAddrs
	case Cluster:
		return r.cluster.Addrs
	}
	return []string{r.single.Addr}
}

// AsynqOpt returns asynq's connection option for the same Redis
// (asynq.RedisClientOpt, RedisFailoverClientOpt or RedisClusterClientOpt),
// for asynq components that make a client of their own. capcheck's commands
// give asynq the client of [URL.NewClient] instead (asynq's ...FromRedisClient
// constructors), so that asynq rides through a failover as they do.
func (r *URL) AsynqOpt() asynq.RedisConnOpt {
	switch r.kind {
	case Sentinel:
		f := r.failover
		return asynq.RedisFailoverClientOpt{
			MasterName: f.MasterName, SentinelAddrs: f.SentinelAddrs,
			SentinelUsername: f.SentinelUsername, SentinelPassword: f.SentinelPassword,
			Username: f.Username, Password: f.Password, TLSConfig: cloneTLS(f.TLSConfig),
		}
	case Cluster:
		c := r.cluster
		return asynq.RedisClusterClientOpt{
			Addrs: c.Addrs, Username: c.Username, Password: c.Password, TLSConfig: cloneTLS(c.TLSConfig),
		}
	}
	s := r.single
	return asynq.RedisClientOpt{
		Network: s.Network, Addr: s.Addr, Username: s.Username, Password: s.Password, DB: s.DB,
		TLSConfig: cloneTLS(s.TLSConfig),
	}
}

func cloneTLS(c *tls.Config) *tls.Config {
	if c == nil {
		return nil
	}
	return c.Clone()
}

// MisplacedAt reports whether raw holds an '@' after the end of its
// authority (the first '/', '?' or '#' after "://"): the mark of a password
// with one of those characters not percent-encoded, whose tail would be read
// as a port, a path or a query and shown by any message that quotes them.
func MisplacedAt(raw string) bool {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return false
	}
	end := strings.IndexAny(rest, "/?#")
	return end >= 0 && strings.Contains(rest[end:], "@")
}
