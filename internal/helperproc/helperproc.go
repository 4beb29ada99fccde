// Package helperproc lets a test binary stand in for the real processes a
// test needs (a short-lived child, a server, a process that execs): the
// test starts its own binary with an environment variable set, and the
// binary's TestMain runs the helper instead of the tests.
//
// It is for tests only and imports nothing of aiwatt.
package helperproc

import (
	"os"
	"testing"
)

// Main is a TestMain body: when the environment variable env is set, it
// calls helper with its value and exits 0 (helper may exit itself);
// otherwise it runs the tests.
func Main(m *testing.M, env string, helper func(value string)) {
	if v, ok := os.LookupEnv(env); ok && v != "" {
		helper(v)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Env returns this process's environment with env set to value, replacing
// any earlier value (a child's getenv would see the first of two).
func Env(env, value string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if len(kv) <= len(env) || kv[:len(env)+1] != env+"=" {
			out = append(out, kv)
		}
	}
	return append(out, env+"="+value)
}
