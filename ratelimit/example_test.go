package ratelimit_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/ratelimit"
)

func Example() {
	// An in-process Redis, as `capcheck run` uses on a bare machine; a fleet
	// would share a real one.
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	lim, err := ratelimit.New(rdb, ratelimit.Config{Limit: ratelimit.PerSecond(200)})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if _, err := lim.Wait(ctx); err != nil {
			log.Fatal(err) // Redis failed or ctx ended: do not send
		}
		// Send one API request here.
	}
	fmt.Println("sent 3 requests, at most", lim.Limit(), "for the fleet")
	// Output: sent 3 requests, at most 200 req/s for the fleet
}

func ExampleLimiter_Pause() {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	lim, err := ratelimit.New(rdb, ratelimit.Config{Limit: ratelimit.PerSecond(50)})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// The API answered 429 with Retry-After: 30. Every replica's Wait now
	// blocks until the 30 seconds have passed.
	if err := lim.Pause(ctx, 30*time.Second); err != nil {
		log.Fatal(err)
	}
	left, err := lim.PausedFor(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("fleet paused:", left > 29*time.Second)
	// Output: fleet paused: true
}

func ExampleLimit_String() {
	fmt.Println(ratelimit.PerSecond(200))
	fmt.Println(ratelimit.PerSecond(0.5))
	// Output:
	// 200 req/s
	// 0.5 req/s
}
