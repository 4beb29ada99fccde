package main

import (
	"net/http"
	"net/http/pprof"

	"github.com/alecthomas/kingpin/v2"
)

// pprofPrefix is where --web.enable-pprof serves the Go runtime profiles.
const pprofPrefix = "/debug/pprof/"

// addPprofFlag registers --web.enable-pprof on cmd. It is off by default:
// profiles reveal the agent's internals and a CPU profile costs CPU while it
// runs, so a user turns it on to see where an agent spends, then off again.
func addPprofFlag(cmd *kingpin.CmdClause) *bool {
	return cmd.Flag("web.enable-pprof", "Serve Go runtime profiles (net/http/pprof) under "+pprofPrefix+" on the metrics listener.").Default("false").Bool()
}

// withPprof returns h unchanged when enabled is false. When it is true, it
// returns a handler that serves net/http/pprof under /debug/pprof/ and
// everything else from h. The profiles are registered on their own mux, not
// on http.DefaultServeMux, so the endpoints exist only when asked for.
func withPprof(h http.Handler, enabled bool) http.Handler {
	if !enabled {
		return h
	}
	mux := http.NewServeMux()
	mux.HandleFunc(pprofPrefix, pprof.Index) // Index also serves the named profiles (heap, goroutine, allocs, ...).
	mux.HandleFunc(pprofPrefix+"cmdline", pprof.Cmdline)
	mux.HandleFunc(pprofPrefix+"profile", pprof.Profile)
	mux.HandleFunc(pprofPrefix+"symbol", pprof.Symbol)
	mux.HandleFunc(pprofPrefix+"trace", pprof.Trace)
	mux.Handle("/", h)
	return mux
}
