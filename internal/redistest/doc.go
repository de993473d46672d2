// Package redistest gives tests a Redis of their own: a private redis-server
// process on a free loopback port, started on demand and stopped when the test
// (or the test binary) ends. It never touches a Redis already running on the
// machine, such as the system one on port 6379.
//
// # One server per test
//
//	func TestSomething(t *testing.T) {
//		srv := redistest.Start(t)   // stopped by t.Cleanup
//		rdb := srv.Client(t)        // closed by t.Cleanup
//		...
//	}
//
// # One server per package
//
// Starting redis-server takes a few tens of milliseconds; a package with many
// tests can share one. Call [Main] from TestMain, then [Start] or [Shared]
// return the package's server, started lazily by the first test that asks and
// stopped after all tests have run:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		rdb := redistest.Shared(t).Client(t)
//		prefix := redistest.NewPrefix(t) // e.g. "t3f9c0a1b2c3d4e5f"
//		key := prefix + ":ratelimit"
//		...
//	}
//
// Tests that share a server isolate their data by key prefix ([NewPrefix]),
// never by FLUSHDB, so they can run with t.Parallel(). A test that must own the
// whole server (it flushes, reconfigures or stops it) uses [StartPrivate].
//
// # Sentinel and Cluster
//
// [StartSentinel] starts a master, its replica and three sentinels (quorum
// 2, down-after 500ms) and gives their redis-sentinel:// URL;
// [Sentinel.KillMaster] kills the master and returns once the replica has
// been promoted. [StartCluster] starts a Redis Cluster of three masters with
// one replica each (cluster-node-timeout 500ms, created with redis-cli
// --cluster create) and gives its redis-cluster:// URL; [Cluster.KillMaster]
// kills one master and returns once its replica serves its slots. Both stop
// every process they started on cleanup, and fail the test (never skip it)
// when they cannot start.
//
// # Finding redis-server
//
// The binary is the one named by the environment variable
// CAPCHECK_TEST_REDIS_SERVER (a path or a name looked up in PATH), else
// redis-server from PATH, /usr/bin or /usr/local/bin. When none is found, or it
// does not start, the test fails (never skips) with a message that says how to
// install it (apt-get install -y redis-server): a run that skipped every test
// needing Redis must not look green, on CI or anywhere else.
// ./scripts/test.sh checks for the binary before it runs any test.
//
// The server runs with no persistence (--save "" --appendonly no) and
// --maxmemory-policy noeviction, bound to 127.0.0.1 only. On Linux it is also
// killed if the test binary dies without cleaning up.
package redistest
