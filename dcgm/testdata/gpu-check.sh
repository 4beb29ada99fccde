#!/usr/bin/env bash
# gpu-check.sh — check aiwatt's GPU energy against nvidia-smi on a real GPU.
#
# For a machine WITH an NVIDIA GPU and WITHOUT a Go toolchain. It starts a
# prebuilt aiwatt agent, samples nvidia-smi power every 200 ms over the same
# window, runs a GPU load (torch matmuls), and prints per GPU the energy the
# agent counted (aiwatt_gpu_energy_joules_total, after - before), the energy
# of nvidia-smi's power integrated with the trapezoid rule, and their ratio.
#
# Usage: gpu-check.sh [path/to/aiwatt]          (default ./bin/aiwatt)
# Environment:
#   LOAD_SECONDS  length of the GPU load (default 60)
#   IDLE_SECONDS  idle padding inside the window before and after the load,
#                 so the window edges fall on steady power (default 3)
#   TOLERANCE     allowed |ratio - 1| for PASS (default 0.10)
#   OUT           when set, results go to $OUT/gpu-check.txt too (and the
#                 agent log to $OUT/gpu-check-agent.log)
# Exit status: 0 all GPUs within tolerance, 1 a GPU outside it, 2 setup error.
set -euo pipefail

BIN=${1:-./bin/aiwatt}
ADDR=127.0.0.1:28299
URL="http://${ADDR}/metrics"
LOAD_SECONDS=${LOAD_SECONDS:-60}
IDLE_SECONDS=${IDLE_SECONDS:-3}
TOLERANCE=${TOLERANCE:-0.10}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
declare -a PIDS=()

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ -n "${OUT:-}" && -f "$WORK/agent.log" ]]; then
		cp "$WORK/agent.log" "$OUT/gpu-check-agent.log" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }
die() {
	say "gpu-check: $*"
	exit 2
}
need() { command -v "$1" >/dev/null 2>&1 || die "missing command: $1"; }

need nvidia-smi
need curl
need awk
need python3
[[ -x "$BIN" ]] || die "aiwatt binary not found or not executable: $BIN (pass its path as the first argument)"
[[ "$LOAD_SECONDS" =~ ^[0-9]+$ && "$LOAD_SECONDS" -gt 0 ]] || die "LOAD_SECONDS must be a positive integer"
[[ "$IDLE_SECONDS" =~ ^[0-9]+$ ]] || die "IDLE_SECONDS must be a non-negative integer"
if [[ -n "${OUT:-}" ]]; then
	mkdir -p "$OUT" || die "cannot create OUT=$OUT"
fi

if ! python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
	die "python3 cannot import torch with CUDA: install a CUDA build of PyTorch (pip install torch) to generate the GPU load"
fi
nvidia-smi -L >"$WORK/gpus.txt" 2>&1 || die "nvidia-smi -L failed: $(cat "$WORK/gpus.txt")"

# now prints the wall clock as seconds since the epoch with a fraction.
now() { date +%s.%N; }

# metric_energy prints "gpu joules" per aiwatt_gpu_energy_joules_total series.
metric_energy() {
	curl -fsS --max-time 5 "$URL" | awk '
		/^aiwatt_gpu_energy_joules_total\{/ {
			if (match($0, /[{,]gpu="[^"]*"/)) {
				g = substr($0, RSTART + 6, RLENGTH - 7)
				print g, $NF
			}
		}'
}

# 1. The agent.
"$BIN" agent --web.listen-address="$ADDR" --agent.interval=1s >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
PIDS+=("$AGENT_PID")

deadline=$((SECONDS + 60))
until metric_energy 2>/dev/null | grep -q .; do
	if ! kill -0 "$AGENT_PID" 2>/dev/null; then
		say "agent exited; last log lines:"
		tail -n 20 "$WORK/agent.log" >&2 || true
		die "aiwatt agent did not start"
	fi
	if ((SECONDS > deadline)); then
		say "agent log:"
		tail -n 20 "$WORK/agent.log" >&2 || true
		die "no aiwatt_gpu_energy_joules_total at $URL after 60s (is NVML visible to the agent?)"
	fi
	sleep 0.5
done

# 2. nvidia-smi power samples. The timestamp field (local time) lets the
# samples be clipped to the measurement window.
nvidia-smi --query-gpu=timestamp,index,power.draw --format=csv,noheader,nounits -lms 200 \
	>"$WORK/smi.csv" 2>"$WORK/smi.err" &
SMI_PID=$!
PIDS+=("$SMI_PID")
sleep 2 # let both samplers settle before the window opens
kill -0 "$SMI_PID" 2>/dev/null || die "nvidia-smi sampling failed: $(cat "$WORK/smi.err")"

# 3. The window: idle, load, idle.
T_START=$(now)
metric_energy >"$WORK/before.txt" || die "cannot read $URL"
sleep "$IDLE_SECONDS"

say "running a ${LOAD_SECONDS}s matmul load on every GPU..."
LOAD_SECONDS="$LOAD_SECONDS" python3 - <<'PY' || die "GPU load failed"
import os, time
import torch

seconds = float(os.environ["LOAD_SECONDS"])
devs = [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
mats = []
for d in devs:
    a = torch.randn(8192, 8192, device=d, dtype=torch.float16)
    b = torch.randn(8192, 8192, device=d, dtype=torch.float16)
    mats.append((a, b))
end = time.monotonic() + seconds
n = 0
while time.monotonic() < end:
    for a, b in mats:
        c = a @ b
    n += 1
    if n % 20 == 0:  # bound the launch queue so the load stops on time
        for d in devs:
            torch.cuda.synchronize(d)
for d in devs:
    torch.cuda.synchronize(d)
print(f"load: {n} rounds of 8192^3 fp16 matmul on {len(devs)} GPU(s)")
PY

sleep "$IDLE_SECONDS"
metric_energy >"$WORK/after.txt" || die "cannot read $URL"
T_END=$(now)
sleep 1 # samples past the window edge, for the interpolation
kill "$SMI_PID" 2>/dev/null || true

# 4. Integrate nvidia-smi power over [T_START, T_END] and compare.
TZ_OFFSET=$(date +%z) # +HHMM / -HHMM: nvidia-smi timestamps are local time

REPORT=$(
	awk -F', *' -v ts="$T_START" -v te="$T_END" -v tz="$TZ_OFFSET" -v tol="$TOLERANCE" \
		-v before="$WORK/before.txt" -v after="$WORK/after.txt" '
	# days_from_civil: days since 1970-01-01 of a proleptic Gregorian date.
	function days(y, m, d,    era, yoe, doy, doe) {
		y -= (m <= 2)
		era = int((y >= 0 ? y : y - 399) / 400)
		yoe = y - era * 400
		doy = int((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
		doe = yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy
		return era * 146097 + doe - 719468
	}
	BEGIN {
		sign = substr(tz, 1, 1) == "-" ? -1 : 1
		tzs = sign * (substr(tz, 2, 2) * 3600 + substr(tz, 4, 2) * 60)
		while ((getline line < before) > 0) { split(line, f, " "); b[f[1]] = f[2] }
		while ((getline line < after) > 0) { split(line, f, " "); a[f[1]] = f[2] }
	}
	# "2026/05/01 12:00:00.123, 0, 123.45"
	NF >= 3 && $3 ~ /^[0-9.]+$/ {
		split($1, dt, " "); split(dt[1], ymd, "/"); split(dt[2], hms, ":")
		t = days(ymd[1] + 0, ymd[2] + 0, ymd[3] + 0) * 86400 + hms[1] * 3600 + hms[2] * 60 + hms[3] - tzs
		g = $2 + 0; p = $3 + 0
		if (g in lt && t > lt[g]) {
			t1 = lt[g]; p1 = lp[g]
			lo = t1 > ts ? t1 : ts; hi = t < te ? t : te
			if (hi > lo) {
				plo = p1 + (p - p1) * (lo - t1) / (t - t1)
				phi = p1 + (p - p1) * (hi - t1) / (t - t1)
				e[g] += (plo + phi) / 2 * (hi - lo)
				cover[g] += hi - lo
			}
		}
		if (!(g in lt) || t > lt[g]) { lt[g] = t; lp[g] = p }
		if (t >= ts && t <= te) n[g]++
		seen[g] = 1
		if (g > maxg) maxg = g
	}
	END {
		printf "window %.1f s (load + idle padding)\n", te - ts
		printf "%-4s %14s %14s %8s %8s  %s\n", "gpu", "agent_J", "nvidia-smi_J", "ratio", "samples", "verdict"
		bad = 0
		for (g = 0; g <= maxg; g++) {
			if (!(g in seen)) continue
			agent = (g in a && g in b) ? a[g] - b[g] : -1
			ratio = (e[g] > 0 && agent >= 0) ? agent / e[g] : 0
			ok = (agent >= 0 && e[g] > 0 && ratio >= 1 - tol && ratio <= 1 + tol && cover[g] >= 0.95 * (te - ts))
			if (!ok) bad = 1
			printf "%-4s %14.1f %14.1f %8.4f %8d  %s\n", g, agent, e[g], ratio, n[g], ok ? "PASS" : "FAIL"
		}
		for (g in a) if (!(g in seen)) { printf "%-4s agent series without nvidia-smi samples\n", g; bad = 1 }
		printf "result: %s (tolerance %.0f%%)\n", bad ? "FAIL" : "PASS", tol * 100
	}' "$WORK/smi.csv"
)

{
	echo "aiwatt gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
	cat "$WORK/gpus.txt"
	echo "agent: $BIN ($("$BIN" --version 2>&1 | head -n 1 || true))"
	printf '%s\n' "$REPORT"
} | if [[ -n "${OUT:-}" ]]; then tee "$OUT/gpu-check.txt"; else cat; fi

grep -q '^result: PASS' <<<"$REPORT"
