//go:build tools

package tools

import (
	_ "github.com/alicebob/miniredis/v2"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/hibiken/asynq"
	_ "github.com/nyaruka/phonenumbers"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/urfave/cli/v2"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/term"
	_ "golang.org/x/time/rate"
	_ "gopkg.in/yaml.v3"
)
