#!/usr/bin/env bash
# demo.sh (make demo): the fastest way to see energy per request move on one machine.
# Starts, on 127.0.0.1 only: a demo inference server that burns real CPU per request,
# the aiwatt agent (RAPL where readable, else the CPU model) attributing energy to it,
# and Debian's Prometheus with aiwatt's recording rules loaded. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
DEMO_DIR=${DEMO_DIR:-.demo}
AGENT_PORT=${AGENT_PORT:-28290}
PROM_PORT=${PROM_PORT:-9090}
VLLM_PORT=${VLLM_PORT:-8000}
RPS=${RPS:-5}

if ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing Debian's prometheus"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
  else
    echo "demo.sh: prometheus not found: sudo apt-get install -y prometheus" >&2
    exit 1
  fi
fi

mkdir -p "$DEMO_DIR/bin" "$DEMO_DIR/prometheus"
[ -x bin/aiwatt ] || "$GO" build -o bin/aiwatt ./cmd/aiwatt
"$GO" build -o "$DEMO_DIR/bin/demo-vllm" ./tools/demo-vllm

cat > "$DEMO_DIR/aiwatt.yml" <<YAML
workloads:
  rules:
    - name: demo-inference
      match: {cmdline: 'demo-vllm .*--model (\S+)'}
      labels: {project: demo, model_id: \$1, workload_type: inference}
inference:
  targets:
    - {url: "http://127.0.0.1:${VLLM_PORT}/metrics", server: vllm}
carbon:
  zone: ${CARBON_ZONE:-DE}
YAML

cat > "$DEMO_DIR/prometheus.yml" <<YAML
global: {scrape_interval: 5s, evaluation_interval: 5s}
rule_files:
  - $(pwd)/alerts/rules/aiwatt-recording.yml
  - $(pwd)/alerts/rules/aiwatt-config.yml
  - $(pwd)/alerts/rules/aiwatt-alerts.yml
scrape_configs:
  - job_name: aiwatt
    static_configs: [{targets: ["127.0.0.1:${AGENT_PORT}"]}]
YAML

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

"$DEMO_DIR/bin/demo-vllm" --listen "127.0.0.1:${VLLM_PORT}" --rps "$RPS" --model demo-llama >"$DEMO_DIR/demo-vllm.log" 2>&1 &
pids+=($!)
bin/aiwatt agent --web.listen-address="127.0.0.1:${AGENT_PORT}" --config.file="$DEMO_DIR/aiwatt.yml" \
  >"$DEMO_DIR/agent.log" 2>&1 &
pids+=($!)
prometheus --config.file="$DEMO_DIR/prometheus.yml" --storage.tsdb.path="$DEMO_DIR/prometheus" \
  --web.listen-address="127.0.0.1:${PROM_PORT}" >"$DEMO_DIR/prometheus.log" 2>&1 &
pids+=($!)

cat <<TXT

aiwatt demo is running (logs in $DEMO_DIR/):
  agent metrics   http://127.0.0.1:${AGENT_PORT}/metrics
  demo server     http://127.0.0.1:${VLLM_PORT}/metrics   (${RPS} requests/s, real CPU work each)
  Prometheus      http://127.0.0.1:${PROM_PORT}/graph

Try these in Prometheus (give it a minute to fill the 5m windows):
  model_id:aiwatt_inference_joules_per_request:rate5m
  model_id:aiwatt_inference_co2e_grams_per_1k_requests:rate5m
  sum by (component) (rate(aiwatt_workload_energy_joules_total{project="demo"}[1m]))

Change the load and watch energy per request move:  RPS=20 make demo
Ctrl-C stops everything.
TXT
wait -n "${pids[@]}"
echo "demo.sh: a process exited; see $DEMO_DIR/*.log" >&2
