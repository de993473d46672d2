package configs

import "github.com/capcheck/capcheck/redisconn"

// redisProblem says what is wrong with the Redis URL s, "" when nothing is.
// The message never holds the URL's password.
func redisProblem(s string) string {
	if _, err := redisconn.Parse(s); err != nil {
		return "must be a Redis URL such as " + RedisDefault + " (forms: " + redisconn.Forms + "): " + err.Error()
	}
	return ""
}
