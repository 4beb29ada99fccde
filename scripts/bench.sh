#!/usr/bin/env bash
# bench.sh: aiwatt's performance check (make bench). It runs the Go benchmarks
# of the hot paths (sampling tick, scrape, RAPL read, process scan) with their
# floors, prints a compact table, then runs tools/benchside: node_exporter
# 1.12.1, Kepler 0.11.4 and aiwatt side by side over the same fixture powercap
# tree, at 80 and 570 processes, each pinned to one core, and prints CPU per
# second of operation at 15 s and 30 s scrape intervals (measured over paced
# windows of 6 scrapes each), series and RSS, plus aiwatt watching 110 pods
# on a fake API server. The side-by-side part takes about 13 minutes.
# docs/performance.md explains every number.
#
# Peers:
#   NODE_EXPORTER  a node_exporter binary; unset: `go install
#                  github.com/prometheus/node_exporter@v1.12.1` into .bench/peers/
#                  (the module proxy must be reachable), then that binary.
#   KEPLER         a Kepler binary built from its v0.11.4 source
#                  (git clone --branch v0.11.4 https://github.com/sustainable-computing-io/kepler,
#                  then make build or go build ./cmd/kepler); unset: Kepler's
#                  row says "not measured".
#
# Everything can be overridden from the environment, e.g.
#   BENCH_COUNT=6 BENCH_TIME=2s ./scripts/bench.sh
#   SKIP_SIDE=1 ./scripts/bench.sh            # Go benchmarks only
#   SKIP_GO=1 ./scripts/bench.sh              # side by side only
#   SIDE_FLAGS="-procs 80 -idle 30s -scrapes 300" ./scripts/bench.sh
#
# To add a benchmark package, append it to BENCH_PKGS and its benchmark names
# to BENCH_PATTERN; to print a ratio to a floor, add "PKG:PREFIX=FLOORPREFIX"
# to BENCH_FLOORS. A benchmark's floor is FLOORPREFIX followed by the size
# suffix of its name (from its first digit on: 2Sockets, 1000Zones,
# 8GPUs64Procs), in the same package. For example, for the GPU sampler:
#   BENCH_PKGS+=" ./gpu/nvml"; BENCH_PATTERN+="|NVMLSample"
#   BENCH_FLOORS+=" nvml:NVMLSample=BareNVML"
set -euo pipefail

cd "$(dirname "$0")/.."

GO=${GO:-go}
BENCH_PKGS=${BENCH_PKGS:-"./agent ./exporter ./rapl ./dcgm ./gpu/nvml ./workload ./attribution ./scrape"}
BENCH_PATTERN=${BENCH_PATTERN:-"Tick|BareLoop|Scrape|MeterSample|BareRead|NVMLSample|ExporterParse|Scan2000$|BareStat2000|AttributeTick|LedgerAdd|ParseVLLM"}
BENCH_FLOORS=${BENCH_FLOORS:-"agent:Tick=TickFloor agent:TickWorkloads=TickFloorWorkloads rapl:MeterSample=BareRead workload:Scan=BareStat"}
BENCH_COUNT=${BENCH_COUNT:-3}
BENCH_TIME=${BENCH_TIME:-1s}
AIWATT_BIN=${AIWATT_BIN:-bin/aiwatt}
NODE_EXPORTER_VERSION=${NODE_EXPORTER_VERSION:-v1.12.1}
NODE_EXPORTER=${NODE_EXPORTER:-}
KEPLER=${KEPLER:-}
SIDE_FLAGS=${SIDE_FLAGS:-"-procs 80,570 -idle 60s -paced 6 -scrapes 1000 -cpu 1"}
SKIP_SIDE=${SKIP_SIDE:-}
SKIP_GO=${SKIP_GO:-}
# SYSCALL_CHECK=1: before the benchmarks, strace each benchmark and its floor
# (pairs in SYSCALL_PAIRS, "DIR:Benchmark=Floor") and print the file system
# calls each makes per iteration; they must match (needs strace).
SYSCALL_CHECK=${SYSCALL_CHECK:-}
SYSCALL_PAIRS=${SYSCALL_PAIRS:-"agent:Tick2Sockets=TickFloor2Sockets agent:TickRAPLOnly2Sockets=TickFloor2Sockets agent:TickWorkloads2000Procs=TickFloorWorkloads2000Procs workload:Scan2000=BareStat2000 rapl:MeterSample2Sockets=BareRead2Sockets"}
OUT=${BENCH_OUT:-.bench}

mkdir -p "$OUT"

# The side-by-side run needs node_exporter: get it before the long part.
if [ -z "$SKIP_SIDE" ] && [ -z "$NODE_EXPORTER" ]; then
  NODE_EXPORTER="$OUT/peers/node_exporter"
  if [ ! -x "$NODE_EXPORTER" ]; then
    echo "== go install github.com/prometheus/node_exporter@$NODE_EXPORTER_VERSION into $OUT/peers/"
    mkdir -p "$OUT/peers"
    GOBIN="$(cd "$OUT/peers" && pwd)" "$GO" install "github.com/prometheus/node_exporter@$NODE_EXPORTER_VERSION" || {
      echo "bench.sh: could not install node_exporter; set NODE_EXPORTER to a node_exporter binary, or SKIP_SIDE=1." >&2
      exit 1
    }
  fi
fi
if [ -z "$SKIP_SIDE" ] && [ ! -x "$AIWATT_BIN" ]; then
  echo "== $AIWATT_BIN missing: building it (make build adds version information)"
  "$GO" build -o "$AIWATT_BIN" ./cmd/aiwatt
fi

echo "== machine"
echo "date:   $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "cpu:    $(LC_ALL=C lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) online CPUs"
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min; other work on the machine skews the numbers)"
echo "go:     $("$GO" version)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo " (with uncommitted changes)")"

# syscalls DIR BENCH N prints "name count" per file system call of one
# iteration of BENCH: the difference between runs of 2N and N iterations,
# divided by N, so setup is not counted.
syscalls() {
  local dir=$1 bench=$2 n=$3 sc bin
  sc=$(cd "$OUT" && pwd)/syscheck
  bin="$sc/$(echo "$dir" | tr / _).test"
  [ -x "$bin" ] || "$GO" test -c -o "$bin" "./$dir"
  for k in 1 2; do
    (cd "$dir" && strace -f -c -o "$sc/$bench.$k.txt" \
      -e trace=openat,open,read,pread64,close,getdents64,fstat,newfstatat,statx,fcntl,epoll_ctl \
      "$bin" -test.run '^$' -test.bench "^Benchmark$bench\$" -test.benchtime "$((n * k))x" >/dev/null 2>&1)
  done
  join <(awk '$NF ~ /^[a-z_0-9]+$/ && $NF != "total" {print $NF, $4}' "$sc/$bench.1.txt" | sort) \
       <(awk '$NF ~ /^[a-z_0-9]+$/ && $NF != "total" {print $NF, $4}' "$sc/$bench.2.txt" | sort) |
    awk -v n="$n" '{ v = ($3 - $2) / n; if (v > 0.5) printf "%s=%.0f ", $1, v }'
}
if [ -n "$SYSCALL_CHECK" ]; then
  echo
  echo "== file system calls per iteration, benchmark against its floor (strace -c, 2N minus N iterations)"
  mkdir -p "$OUT/syscheck"
  for pair in $SYSCALL_PAIRS; do
    dir=${pair%%:*}; rest=${pair#*:}; bench=${rest%%=*}; floor=${rest#*=}
    a=$(syscalls "$dir" "$bench" 20); f=$(syscalls "$dir" "$floor" 20)
    verdict=same; [ "$a" = "$f" ] || verdict=DIFFERENT
    printf '%-16s %-30s %s\n%-16s %-30s %s  -> %s\n' "$dir" "$bench" "$a" "" "$floor" "$f" "$verdict"
  done
fi

if [ -n "$SKIP_GO" ]; then
  echo
  echo "== Go benchmarks skipped (SKIP_GO is set)"
else
echo
echo "== go test -bench '$BENCH_PATTERN' -benchtime $BENCH_TIME -count $BENCH_COUNT $BENCH_PKGS"
# shellcheck disable=SC2086 # BENCH_PKGS is a list.
"$GO" test -run '^$' -bench "$BENCH_PATTERN" -benchmem -benchtime "$BENCH_TIME" -count "$BENCH_COUNT" $BENCH_PKGS \
  | tee "$OUT/go-bench.txt" | grep -E '^(ok|FAIL|---|panic)' || true
if grep -qE '^(FAIL|--- FAIL|panic)' "$OUT/go-bench.txt"; then
  echo "bench.sh: a benchmark failed; its output is in $OUT/go-bench.txt" >&2
  exit 1
fi

echo
echo "== Go benchmarks: median of $BENCH_COUNT runs (raw output, benchstat-ready: $OUT/go-bench.txt)"
awk -v floors="$BENCH_FLOORS" '
  function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function human(ns) {
    if (ns >= 1e6) return sprintf("%.2f ms", ns / 1e6)
    if (ns >= 1e3) return sprintf("%.1f µs", ns / 1e3)
    return sprintf("%.0f ns", ns)
  }
  BEGIN { nf = split(floors, fl, " ") }
  /^pkg: / { pkg = $2; sub(/.*\//, "", pkg); next }
  /^Benchmark/ {
    name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
    key = pkg SUBSEP name
    if (!(key in ns)) { order[++n] = key; pkgOf[key] = pkg; nameOf[key] = name }
    for (i = 2; i < NF; i++) {
      if ($(i+1) == "ns/op") ns[key] = ns[key] " " $i
      if ($(i+1) == "B/op") bytes[key] = bytes[key] " " $i
      if ($(i+1) == "allocs/op") allocs[key] = allocs[key] " " $i
    }
  }
  END {
    printf "%-10s %-38s %12s %12s %10s  %s\n", "package", "benchmark", "time/op", "B/op", "allocs/op", "ratio to floor"
    for (k = 1; k <= n; k++) {
      key = order[k]; p = pkgOf[key]; b = nameOf[key]; ratio = ""
      for (f = 1; f <= nf; f++) {
        split(fl[f], pf, ":"); split(pf[2], pr, "=")
        if (pf[1] != p || index(b, pr[1]) != 1 || index(b, pr[2]) == 1) continue
        if (!match(b, /[0-9].*$/)) continue
        fk = p SUBSEP pr[2] substr(b, RSTART)
        if (fk in ns) ratio = sprintf("%.2fx %s%s", median(ns[key]) / median(ns[fk]), pr[2], substr(b, RSTART))
      }
      printf "%-10s %-38s %12s %12d %10d  %s\n", p, b, human(median(ns[key])), median(bytes[key]), median(allocs[key]), ratio
    }
  }' "$OUT/go-bench.txt" | tee "$OUT/go-bench-table.txt"
fi

if [ -n "$SKIP_SIDE" ]; then
  echo
  echo "== side-by-side run skipped (SKIP_SIDE is set)"
  exit 0
fi

echo
echo "== side by side with node_exporter and Kepler (tools/benchside $SIDE_FLAGS)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
"$GO" build -o "$OUT/benchside" ./tools/benchside
# shellcheck disable=SC2086 # SIDE_FLAGS is a list.
"$OUT/benchside" -aiwatt "$AIWATT_BIN" -node-exporter "$NODE_EXPORTER" -kepler "$KEPLER" $SIDE_FLAGS | tee "$OUT/benchside.txt"
