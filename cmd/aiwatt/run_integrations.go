package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/prometheus/common/expfmt"

	"github.com/inferensys/aiwatt/runner"
)

// pushRun pushes the run's summary to a Pushgateway (PUT: it replaces the
// group job/<job>/<labels>) in the text exposition format.
func pushRun(ctx context.Context, gateway, job string, labels [][2]string, rep *runner.Report) error {
	reg := prometheus.NewRegistry()
	energy := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "aiwatt_run_energy_joules", Help: "Energy the run's process tree used, by component (total is their sum).",
	}, []string{"component"})
	co2e := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "aiwatt_run_co2e_grams", Help: "CO2e of the run's energy, by basis (location, market).",
	}, []string{"basis"})
	duration := prometheus.NewGauge(prometheus.GaugeOpts{Name: "aiwatt_run_duration_seconds", Help: "Duration of the run."})
	budget := prometheus.NewGauge(prometheus.GaugeOpts{Name: "aiwatt_run_budget_joules", Help: "Energy budget of the run; 0 means none."})
	exceeded := prometheus.NewGauge(prometheus.GaugeOpts{Name: "aiwatt_run_budget_exceeded", Help: "1 when the run was stopped for exceeding its energy budget."})
	exit := prometheus.NewGauge(prometheus.GaugeOpts{Name: "aiwatt_run_exit_code", Help: "Exit code of aiwatt run (the command's, or 124 over budget)."})
	end := prometheus.NewGauge(prometheus.GaugeOpts{Name: "aiwatt_run_end_timestamp_seconds", Help: "When the run ended, in seconds since the epoch."})
	reg.MustRegister(energy, co2e, duration, budget, exceeded, exit, end)

	energy.WithLabelValues("cpu").Set(rep.Energy.CPU)
	energy.WithLabelValues("dram").Set(rep.Energy.DRAM)
	energy.WithLabelValues("gpu").Set(rep.Energy.GPU)
	energy.WithLabelValues("total").Set(rep.Energy.Total)
	co2e.WithLabelValues("location").Set(rep.CO2e.LocationGrams)
	if rep.CO2e.MarketGrams != nil {
		co2e.WithLabelValues("market").Set(*rep.CO2e.MarketGrams)
	}
	duration.Set(rep.DurationSeconds)
	budget.Set(rep.BudgetJoules)
	if rep.BudgetExceeded {
		exceeded.Set(1)
	}
	exit.Set(float64(rep.ExitCode))
	end.Set(float64(rep.End.UnixNano()) / 1e9)

	p := push.New(gateway, job).Gatherer(reg).Format(expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, l := range labels {
		p = p.Grouping(l[0], l[1])
	}
	if err := p.PushContext(ctx); err != nil {
		return fmt.Errorf("push to %s: %w", gateway, err)
	}
	return nil
}

// mlflowBatch is the body of MLflow's POST /api/2.0/mlflow/runs/log-batch.
type mlflowBatch struct {
	RunID   string         `json:"run_id"`
	Metrics []mlflowMetric `json:"metrics"`
	Tags    []mlflowTag    `json:"tags"`
}

type mlflowMetric struct {
	Key       string  `json:"key"`
	Value     float64 `json:"value"`
	Timestamp int64   `json:"timestamp"`
	Step      int64   `json:"step"`
}

type mlflowTag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// logMLflow logs the run's summary numbers as metrics and its provenance as
// tags of an MLflow run, through the REST API. MLFLOW_TRACKING_TOKEN (a
// bearer token) or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD
// authenticate, as for MLflow's own client; they are never logged.
func logMLflow(ctx context.Context, trackingURI, runID string, rep *runner.Report) error {
	batch := mlflowBatch{RunID: runID}
	ts := rep.End.UnixMilli()
	for _, m := range rep.Metrics() {
		batch.Metrics = append(batch.Metrics, mlflowMetric{Key: m.Key, Value: m.Value, Timestamp: ts})
	}
	tags := rep.Tags()
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		batch.Tags = append(batch.Tags, mlflowTag{Key: k, Value: tags[k]})
	}
	body, err := json.Marshal(batch)
	if err != nil {
		return fmt.Errorf("encode MLflow batch: %w", err)
	}
	endpoint := strings.TrimRight(trackingURI, "/") + "/api/2.0/mlflow/runs/log-batch"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("MLflow request %s: %w", endpoint, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "aiwatt")
	if tok := os.Getenv("MLFLOW_TRACKING_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	} else if u := os.Getenv("MLFLOW_TRACKING_USERNAME"); u != "" {
		req.SetBasicAuth(u, os.Getenv("MLFLOW_TRACKING_PASSWORD"))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("MLflow POST %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("MLflow POST %s: status %s: %s", endpoint, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// writeWandbSummary writes the run's summary under flat aiwatt/ keys into a
// W&B wandb-summary.json, keeping the keys an existing file already holds.
func writeWandbSummary(path string, rep *runner.Report) error {
	summary := map[string]any{}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &summary); err != nil {
			return fmt.Errorf("read %s: not a JSON object: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("read %s: %w", path, err)
	}
	for _, m := range rep.Metrics() {
		summary[m.Key] = m.Value
	}
	for k, v := range rep.Tags() {
		summary[k] = v
	}
	out, err := json.MarshalIndent(summary, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".wandb-summary-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(append(out, '\n')); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
