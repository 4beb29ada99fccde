#!/usr/bin/env bash
# attribution-check.sh: on a machine with an NVIDIA GPU and no Go toolchain, check that the agent
# attributes real GPU energy to the process that uses the GPU (NVML process list and per-process SM
# utilisation), and that workloads + node idle + unattributed add up to the GPU's energy.
# Usage: attribution-check.sh [path/to/aiwatt]   (needs python3 with torch)
set -euo pipefail
BIN=${1:-./bin/aiwatt}
SECONDS_LOAD=${SECONDS_LOAD:-30}
WORK=$(mktemp -d)
ADDR=127.0.0.1:28298
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
cat >"$WORK/aiwatt.yml" <<'YAML'
workloads:
  rules:
    - match: {cmdline: 'gpuload-(\S+)'}
      labels: {project: gpucheck, model_id: $1, workload_type: training}
YAML
"$BIN" agent --web.listen-address="$ADDR" --agent.interval=1s --config.file="$WORK/aiwatt.yml" >"$WORK/agent.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://$ADDR/metrics" >/dev/null && break; sleep 0.3; done
cat >"$WORK/load.py" <<'PY'
import sys, time, torch
end = time.time() + float(sys.argv[1])
a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
while time.time() < end:
    b = a @ a
torch.cuda.synchronize()
PY
before=$(curl -s "http://$ADDR/metrics")
python3 "$WORK/load.py" "$SECONDS_LOAD" gpuload-matmul8k &
pids+=($!)
wait "${pids[-1]}"
sleep 3  # two more samples after the load ends
after=$(curl -s "http://$ADDR/metrics")
sum() { awk -v pat="$1" -v must="${2:-}" 'index($0, pat) == 1 && index($0, must) { s += $NF } END { printf "%.3f", s }'; }
d() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
gpu=$(d "$(echo "$after" | sum 'aiwatt_gpu_energy_joules_total{')" "$(echo "$before" | sum 'aiwatt_gpu_energy_joules_total{')")
wl=$(d "$(echo "$after" | sum 'aiwatt_workload_energy_joules_total{component="gpu",')" "$(echo "$before" | sum 'aiwatt_workload_energy_joules_total{component="gpu",')")
mine=$(d "$(echo "$after" | sum 'aiwatt_workload_energy_joules_total{component="gpu",' 'project="gpucheck"')" "$(echo "$before" | sum 'aiwatt_workload_energy_joules_total{component="gpu",' 'project="gpucheck"')")
idle=$(d "$(echo "$after" | sum 'aiwatt_node_idle_energy_joules_total{component="gpu"}')" "$(echo "$before" | sum 'aiwatt_node_idle_energy_joules_total{component="gpu"}')")
un=$(d "$(echo "$after" | sum 'aiwatt_node_unattributed_energy_joules_total{component="gpu"}')" "$(echo "$before" | sum 'aiwatt_node_unattributed_energy_joules_total{component="gpu"}')")
echo "GPU energy over the load: $gpu J"
echo "  workload gpucheck/matmul8k: $mine J; all workloads: $wl J; node idle: $idle J; unattributed: $un J"
awk -v g="$gpu" -v w="$wl" -v i="$idle" -v u="$un" -v m="$mine" 'BEGIN {
  printf "  conservation: workloads + idle + unattributed = %.3f J (%.6f of the GPU energy)\n", w + i + u, (w + i + u) / g
  printf "  share to the load process: %.1f%%\n", 100 * m / g
  exit !(g > 0 && m > 0 && (w + i + u) / g > 0.999999 && (w + i + u) / g < 1.000001) }'
echo "$after" | grep -E '^aiwatt_workload_energy_joules_total\{component="gpu"|^aiwatt_gpu_info' | head -5
