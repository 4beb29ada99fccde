// Package report owns aiwatt's disclosure reports: it queries Prometheus
// (or Thanos/Mimir behind the same API) for one period, computes KPIs by
// project, model, workload type and location (IT and facility energy,
// location- and market-based CO2e, energy and CO2e per 1k inferences, J per
// output token, SCI per functional unit, training runs), maps them onto
// reporting frameworks (GRI, SASB, ESRS) kept as versioned embedded YAML in
// frameworks/, and renders JSON, CSV, Markdown, HTML (inline SVG charts) and
// PDF (with the Go fonts embedded, so names in any Latin, Greek or Cyrillic
// script print as written).
//
// # Method
//
// Every figure comes from PromQL run by Build and recorded in
// Report.Queries. Totals are each counter's last minus first sample in the
// period (internal/energyql), evaluated at its end: the same answer on
// Prometheus, Thanos and VictoriaMetrics, whose increase() functions
// differ; series that reset in the period use increase() and are named in
// a data-quality note. Groups keep the location label and, beside it,
// region (a fleet labels each Prometheus with cluster and region). The
// query engine's warnings (a partial response from Thanos with a store
// down) are listed in DataQuality.PartialResponse and become a gap over the
// whole period: such a report is never complete. IT energy is the workloads' energy plus node idle and
// unattributed energy (the attribution policy keeps them apart); facility
// energy is IT energy × PUE from the configuration. A workload's CO2e is its
// own aiwatt_workload_co2e_grams_total (time-matched by the agent) × PUE; the
// period total also carries idle and unattributed energy at the
// energy-weighted average intensity of attributed energy, so
//
//	total CO2e = PUE × Σ workload CO2e × (IT energy / workload energy).
//
// Gaps are windows of the configured resolution in which an instance
// exported no aiwatt_samples_total sample; a KPI with no data is reported as
// "no data" (null in JSON, empty in CSV), never as zero. A negative figure
// (a counter that went backwards, a wrong recording rule), an implausibly
// large one (more energy or CO2e than the world's in a year) and training
// sample timestamps outside the period are data-quality findings in the
// report's notes; figures are shown as measured, and no value stops the
// report from rendering. Training runs are
// the series with workload_type="training": wall-clock is from their first
// to last sample (as seen at steps of the resolution), GPU-active time is the number of
// resolution steps in which their GPU energy rose × the step, and GPU-hours
// are GPU-active hours × the GPU count configured for the run (the agent
// does not export a workload's GPU count; without configuration GPU-hours
// are "no data").
//
// JSON and CSV are deterministic: sorted keys and rows, numbers with at most
// nine significant digits, and no wall-clock time; the same period and data
// give the same bytes.
//
// # Cloud-provider figures
//
// With Options.Ledger (`aiwatt report --ledger FILE`) the report reads the
// CSV export of the aiwatt-cloud ledger (`aiwatt-cloud --export.csv FILE`)
// with LoadLedgerCSV: encoding/csv only, so the agent binary links neither
// cloud SDKs nor SQLite, and this package does not import cloud/. The
// header must be exactly LedgerCSVColumns (in any order; a test in
// cloud/ledger ties it to the writer); missing or unknown columns, a bad
// row (file:line) or the SQLite file itself are refused. A --ledger file
// that cannot be read is an error (exit 2), not a data-quality note: the
// user asked for it. Rows whose day or month overlaps [From, To) are kept;
// of the same figure under several carbon model versions the most recently
// fetched (then the greatest version) is shown and the rest counted; the
// rest are summed per provider, account, service, region, calendar month and
// metric (= GHG scope and basis), keeping the model version, the highest
// revision and the latest fetch time. Monthly figures are shown whole, not
// prorated (marked when the month reaches outside the period); daily cost
// and usage are summed over the days inside it. The "Cloud-provider
// figures" section (Report.Cloud; every format) lists them beside the
// measured totals and says that they are the providers' own estimates,
// naming the model versions, and are never added to aiwatt's figures:
// nothing else in the report changes with --ledger. Without --ledger the
// section says "no ledger".
//
// # Distribution
//
// Distributor (distribute.go) sends the written files on, using the standard
// library only: an HTTP PUT of each file to a URL prefix or {file} template
// (S3-compatible stores through a bucket policy or a prefix-scoped token,
// WebDAV, any HTTP store; AWS S3 with SigV4 credentials is left to
// `aws s3 cp`), retried with exponential backoff on network errors, 5xx and
// 429 (Retry-After honoured); and one multipart/mixed email over SMTP
// (STARTTLS or implicit TLS; neither the report nor credentials go over
// plaintext unless Insecure allows it; EHLO names this host) with a one-line summary from report.json and the
// files attached up to a size limit. Token, password, header values and URL
// query strings never appear in the summary lines or errors.
//
// It must not import agent/, exporter/ or any cloud SDK; it talks to
// Prometheus only through the Querier interface (satisfied by client_golang's
// api/v1 API).
package report
