package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	promconfig "github.com/prometheus/common/config"

	"github.com/inferensys/aiwatt/report"
)

type reportCommand struct {
	cmd        *kingpin.CmdClause
	from, to   *string
	prometheus *string
	httpConfig *string
	config     *string
	ledger     *string
	formats    *string
	out        *string
	resolution *time.Duration
	timeout    *time.Duration

	// Distribution (report/distribute.go): HTTP PUT upload and SMTP email.
	uploadURL, uploadTokenFile                    *string
	uploadHeaders                                 *[]string
	uploadTimeout                                 *time.Duration
	uploadRetries                                 *int
	emailSMTP, emailFrom, emailSubject, emailUser *string
	emailPassFile, emailTLS, emailCAFile          *string
	emailTo                                       *[]string
	emailInsecure                                 *bool
	emailMaxBytes                                 *int64
	emailTimeout                                  *time.Duration
}

func newReportCommand(app *kingpin.Application) *reportCommand {
	c := &reportCommand{cmd: app.Command("report", "Write an energy and carbon disclosure report for a period (JSON, CSV, Markdown, HTML, PDF) from Prometheus.")}
	c.from = c.cmd.Flag("from", "Start of the period, RFC 3339 or YYYY-MM-DD (UTC midnight).").Required().String()
	c.to = c.cmd.Flag("to", "End of the period (exclusive), RFC 3339 or YYYY-MM-DD; every total is evaluated at this time.").Required().String()
	c.prometheus = c.cmd.Flag("prometheus", "Prometheus (or Thanos/Mimir query) base URL.").Required().String()
	c.httpConfig = c.cmd.Flag("prometheus.http-config-file", "HTTP client configuration for Prometheus (TLS, basic auth, bearer token file), in Prometheus's http_config format.").Default("").String()
	c.config = c.cmd.Flag("config", "Report configuration file (organisation, boundary, PUE, targets, market instruments, training-run GPU counts).").Default("").String()
	c.ledger = c.cmd.Flag("ledger", "CSV export of the aiwatt-cloud ledger (aiwatt-cloud --export.csv FILE) whose cloud-provider figures for the period are shown beside the measured figures, never added to them, with the providers' model versions. A file that cannot be read or is not that export exits 2. Without it the report says \"no ledger\".").Default("").String()
	c.formats = c.cmd.Flag("format", "Comma-separated formats: "+strings.Join(report.Formats, ",")+".").Default(strings.Join(report.Formats, ",")).String()
	c.out = c.cmd.Flag("out", "Directory to write report.FORMAT files into.").Default(".").String()
	c.resolution = c.cmd.Flag("resolution", "Step for finding gaps, outages and GPU-active time; at least the scrape interval.").Default("15m").Duration()
	c.timeout = c.cmd.Flag("timeout", "Timeout for all queries together.").Default("5m").Duration()

	c.uploadURL = c.cmd.Flag("upload.url", "PUT each report file to URL/FILENAME (query string kept), or to URL with {file} replaced by the file name. For S3-compatible stores use a bucket policy or prefix-scoped token; for AWS S3 with SigV4 credentials use `aws s3 cp`.").Default("").String()
	c.uploadHeaders = c.cmd.Flag("upload.header", "Extra \"Key: Value\" header on every PUT (repeatable; values are never logged).").Strings()
	c.uploadTokenFile = c.cmd.Flag("upload.bearer-token-file", "File holding a token sent as \"Authorization: Bearer TOKEN\" (never logged).").Default("").String()
	c.uploadTimeout = c.cmd.Flag("upload.timeout", "Timeout for each PUT attempt.").Default("1m").Duration()
	c.uploadRetries = c.cmd.Flag("upload.retries", "Retries after network errors, 5xx and 429, with exponential backoff from 1s (Retry-After honoured).").Default("4").Int()
	c.emailSMTP = c.cmd.Flag("email.smtp", "Mail the report files through this SMTP server (host:port).").Default("").String()
	c.emailFrom = c.cmd.Flag("email.from", "Sender address.").Default("").String()
	c.emailTo = c.cmd.Flag("email.to", "Recipient address (repeatable).").Strings()
	c.emailSubject = c.cmd.Flag("email.subject", "Subject (default \"aiwatt report FROM–TO\").").Default("").String()
	c.emailUser = c.cmd.Flag("email.username", "SMTP AUTH PLAIN username.").Default("").String()
	c.emailPassFile = c.cmd.Flag("email.password-file", "File holding the SMTP password (never logged).").Default("").String()
	c.emailTLS = c.cmd.Flag("email.tls", "starttls (upgrade; a server without STARTTLS is refused unless --email.insecure), tls (implicit, e.g. port 465) or none (needs --email.insecure).").Default("starttls").Enum("starttls", "tls", "none")
	c.emailCAFile = c.cmd.Flag("email.tls-ca-file", "PEM CA bundle to verify the SMTP server with instead of the system roots.").Default("").String()
	c.emailInsecure = c.cmd.Flag("email.insecure", "Allow sending the report and credentials over a plaintext connection (--email.tls=none, or a server that offers no STARTTLS).").Bool()
	c.emailMaxBytes = c.cmd.Flag("email.max-attachment-bytes", "Files larger than this are not attached (the message says so).").Default("10485760").Int64()
	c.emailTimeout = c.cmd.Flag("email.timeout", "Timeout for the SMTP conversation.").Default("1m").Duration()
	return c
}

func parseReportTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, s)
}

func (c *reportCommand) run(logger *slog.Logger) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "aiwatt report: "+format+"\n", a...)
		return 2
	}
	from, err := parseReportTime(*c.from)
	if err != nil {
		return fail("--from: %v", err)
	}
	to, err := parseReportTime(*c.to)
	if err != nil {
		return fail("--to: %v", err)
	}
	var formats []string
	for _, f := range strings.Split(*c.formats, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		known := false
		for _, k := range report.Formats {
			known = known || k == f
		}
		if !known {
			return fail("--format: unknown format %q (want %s)", f, strings.Join(report.Formats, ","))
		}
		formats = append(formats, f)
	}
	dist, err := c.distributor(from, to)
	if err != nil {
		return fail("%v", err)
	}
	cfg, err := report.LoadConfig(*c.config)
	if err != nil {
		return fail("--config: %v", err)
	}
	pc := api.Config{Address: *c.prometheus}
	if *c.httpConfig != "" {
		hc, _, err := promconfig.LoadHTTPConfigFile(*c.httpConfig)
		if err != nil {
			return fail("--prometheus.http-config-file: %v", err)
		}
		rt, err := promconfig.NewRoundTripperFromConfig(*hc, "aiwatt-report")
		if err != nil {
			return fail("--prometheus.http-config-file: %v", err)
		}
		pc.RoundTripper = rt
	}
	client, err := api.NewClient(pc)
	if err != nil {
		return fail("--prometheus: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *c.timeout)
	defer cancel()
	r, err := report.Build(ctx, v1.NewAPI(client), report.Options{
		From: from, To: to, Resolution: *c.resolution, Config: cfg, Source: *c.prometheus, Ledger: *c.ledger,
	})
	if err != nil {
		return fail("%v", err)
	}
	paths, err := report.Write(r, *c.out, formats)
	if err != nil {
		return fail("%v", err)
	}
	for _, p := range paths {
		fmt.Println(p)
	}
	logger.Info("report written", "from", r.From, "to", r.To, "queries", len(r.Queries), "gaps", len(r.DataQuality.Gaps), "files", len(paths))
	if err := dist.Distribute(context.Background(), paths, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "aiwatt report: %v (the files are in %s)\n", err, *c.out)
		return 1
	}
	return 0
}

// distributor validates the --upload.* and --email.* flags (reading the
// token, password and CA files) before any query runs.
func (c *reportCommand) distributor(from, to time.Time) (*report.Distributor, error) {
	opts := report.DistributeOptions{From: from, To: to}
	if *c.uploadURL != "" {
		opts.Upload = &report.UploadOptions{URL: *c.uploadURL, Headers: *c.uploadHeaders, BearerTokenFile: *c.uploadTokenFile,
			Timeout: *c.uploadTimeout, Retries: max(*c.uploadRetries, 0)}
		if opts.Upload.Retries == 0 {
			opts.Upload.Retries = -1 // 0 in UploadOptions means the default.
		}
	} else if len(*c.uploadHeaders) > 0 || *c.uploadTokenFile != "" {
		return nil, fmt.Errorf("--upload.header and --upload.bearer-token-file need --upload.url")
	}
	if *c.emailSMTP != "" {
		opts.Email = &report.EmailOptions{SMTP: *c.emailSMTP, From: *c.emailFrom, To: *c.emailTo, Subject: *c.emailSubject,
			Username: *c.emailUser, PasswordFile: *c.emailPassFile, TLS: *c.emailTLS, CAFile: *c.emailCAFile,
			Insecure: *c.emailInsecure, MaxAttachmentBytes: *c.emailMaxBytes, Timeout: *c.emailTimeout}
	} else if len(*c.emailTo) > 0 || *c.emailFrom != "" {
		return nil, fmt.Errorf("--email.from and --email.to need --email.smtp")
	}
	return report.NewDistributor(opts)
}
