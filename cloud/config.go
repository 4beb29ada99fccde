package cloud

import (
	"fmt"
	"regexp"
	"time"

	"github.com/inferensys/aiwatt/internal/yamlconf"
)

// Config is the aiwatt-cloud configuration file. A provider section that
// is absent is not pulled; one that is present is pulled if its SDK's
// standard credential chain yields credentials. The file holds no secrets.
type Config struct {
	// Ledger is the SQLite file (default ./aiwatt-cloud.db; --ledger wins).
	Ledger string `yaml:"ledger"`
	// Schedule is the time between pulls (default 24h; --schedule wins).
	Schedule time.Duration `yaml:"schedule"`
	// Deadline bounds one run of all providers (default 30m).
	Deadline time.Duration `yaml:"deadline"`
	Retry    RetryConfig   `yaml:"retry"`
	AWS      *AWSConfig    `yaml:"aws"`
	Azure    *AzureConfig  `yaml:"azure"`
	GCP      *GCPConfig    `yaml:"gcp"`
}

// RetryConfig is the per-call retry policy.
type RetryConfig struct {
	Attempts  int           `yaml:"attempts"`   // default 5
	BaseDelay time.Duration `yaml:"base_delay"` // default 1s
	MaxDelay  time.Duration `yaml:"max_delay"`  // default 1m
}

// AWSConfig selects what is read from AWS.
type AWSConfig struct {
	Region         string   `yaml:"region"`   // SDK region (default us-east-1)
	Accounts       []string `yaml:"accounts"` // linked accounts for Cost Explorer; empty = whole payer
	CostDays       int      `yaml:"cost_days"`
	CarbonMonths   int      `yaml:"carbon_months"`
	CostServices   []string `yaml:"cost_services"`
	CarbonServices []string `yaml:"carbon_services"`
	CostEndpoint   string   `yaml:"cost_endpoint"`
	CarbonEndpoint string   `yaml:"carbon_endpoint"`
	SkipCost       bool     `yaml:"skip_cost"`
	SkipCarbon     bool     `yaml:"skip_carbon"`
}

// AzureConfig selects what is read from Azure.
type AzureConfig struct {
	Subscriptions []string `yaml:"subscriptions"`
	CostScopes    []string `yaml:"cost_scopes"`
	CostServices  []string `yaml:"cost_services"`
	CostDays      int      `yaml:"cost_days"`
	CarbonMonths  int      `yaml:"carbon_months"`
	Endpoint      string   `yaml:"endpoint"`
	SkipCost      bool     `yaml:"skip_cost"`
	SkipCarbon    bool     `yaml:"skip_carbon"`
}

// GCPConfig selects what is read from Google Cloud.
type GCPConfig struct {
	BillingProject string   `yaml:"billing_project"`
	Table          string   `yaml:"table"`
	Projects       []string `yaml:"projects"`
	Months         int      `yaml:"months"`
	Endpoint       string   `yaml:"endpoint"`
}

var (
	awsAccountRE = regexp.MustCompile(`^[0-9]{12}$`)
	uuidRE       = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	bqTableRE    = regexp.MustCompile("^[a-zA-Z0-9_.:-]+\\.[a-zA-Z0-9_]+\\.[a-zA-Z0-9_$-]+$")
)

// LoadConfig reads and checks the file; errors read "FILE:LINE: reason".
func LoadConfig(path string) (*Config, error) {
	data, err := yamlconf.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(path, data)
}

// ParseConfig decodes and checks data; name prefixes errors.
func ParseConfig(name string, data []byte) (*Config, error) {
	c := &Config{}
	root, err := yamlconf.Decode(name, data, c)
	if err != nil {
		return nil, err
	}
	bad := func(path, format string, a ...any) error {
		return fmt.Errorf("%s:%d: %s", name, yamlconf.Line(root, path), fmt.Sprintf(format, a...))
	}
	if c.Schedule < 0 || (c.Schedule > 0 && c.Schedule < time.Minute) {
		return nil, bad("schedule", "schedule must be at least 1m")
	}
	if c.Deadline < 0 {
		return nil, bad("deadline", "deadline must be positive")
	}
	if c.Retry.Attempts < 0 || c.Retry.BaseDelay < 0 || c.Retry.MaxDelay < 0 {
		return nil, bad("retry", "retry values must not be negative")
	}
	if a := c.AWS; a != nil {
		for i, acct := range a.Accounts {
			if !awsAccountRE.MatchString(acct) {
				return nil, bad(fmt.Sprintf("aws.accounts[%d]", i), "an AWS account ID is 12 digits")
			}
		}
		if a.CostDays < 0 || a.CarbonMonths < 0 {
			return nil, bad("aws", "look-back windows must not be negative")
		}
		if a.SkipCost && a.SkipCarbon {
			return nil, bad("aws", "skip_cost and skip_carbon both set: remove the aws section instead")
		}
	}
	if z := c.Azure; z != nil {
		if len(z.Subscriptions) == 0 && !z.SkipCarbon {
			return nil, bad("azure", "azure.subscriptions is required for carbon")
		}
		for i, s := range z.Subscriptions {
			if !uuidRE.MatchString(s) {
				return nil, bad(fmt.Sprintf("azure.subscriptions[%d]", i), "a subscription ID is a UUID")
			}
		}
		if z.CostDays < 0 || z.CarbonMonths < 0 {
			return nil, bad("azure", "look-back windows must not be negative")
		}
	}
	if g := c.GCP; g != nil {
		if g.BillingProject == "" {
			return nil, bad("gcp", "gcp.billing_project is required")
		}
		if !bqTableRE.MatchString(g.Table) {
			return nil, bad("gcp.table", "gcp.table must be project.dataset.table")
		}
		if g.Months < 0 {
			return nil, bad("gcp.months", "months must not be negative")
		}
	}
	if c.AWS == nil && c.Azure == nil && c.GCP == nil {
		return nil, fmt.Errorf("%s: no provider configured (aws, azure or gcp)", name)
	}
	return c, nil
}

// NewRetrier returns the configured retry policy.
func (r RetryConfig) NewRetrier() *Retrier {
	return &Retrier{Attempts: r.Attempts, BaseDelay: r.BaseDelay, MaxDelay: r.MaxDelay}
}
