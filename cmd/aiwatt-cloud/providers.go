package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"

	"github.com/inferensys/aiwatt/cloud"
	cloudaws "github.com/inferensys/aiwatt/cloud/aws"
	cloudazure "github.com/inferensys/aiwatt/cloud/azure"
	cloudgcp "github.com/inferensys/aiwatt/cloud/gcp"
)

// credentialCheckTimeout bounds the start-up probe of each credential chain.
const credentialCheckTimeout = 20 * time.Second

// firstLine keeps SDK credential errors short; they name the sources tried
// and never hold secret values.
func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// buildTasks builds one task per configured provider. Credentials come only
// from each SDK's standard chain; a provider whose chain yields none is
// disabled with the reason.
func buildTasks(ctx context.Context, cfg *cloud.Config, logger *slog.Logger) (tasks []cloud.Task, disabled map[string]string, closeAll func()) {
	disabled = map[string]string{}
	var closers []func()
	closeAll = func() {
		for _, c := range closers {
			c()
		}
	}
	if a := cfg.AWS; a != nil {
		region := a.Region
		if region == "" {
			region = "us-east-1"
		}
		cctx, cancel := context.WithTimeout(ctx, credentialCheckTimeout)
		awsCfg, err := awsconfig.LoadDefaultConfig(cctx, awsconfig.WithRegion(region))
		if err == nil {
			_, err = awsCfg.Credentials.Retrieve(cctx)
		}
		cancel()
		if err != nil {
			disabled["aws"] = "no credentials from the AWS default chain (AWS_* environment, shared config/credentials files, IRSA web identity, SSO, ECS/EC2 role): " + firstLine(err)
		} else {
			tasks = append(tasks, cloudaws.New(cloudaws.Options{Config: awsCfg, Accounts: a.Accounts, CostDays: a.CostDays,
				CarbonMonths: a.CarbonMonths, CostServices: a.CostServices, CarbonServices: a.CarbonServices,
				CostEndpoint: a.CostEndpoint, CarbonEndpoint: a.CarbonEndpoint, SkipCost: a.SkipCost, SkipCarbon: a.SkipCarbon}))
		}
	}
	if z := cfg.Azure; z != nil {
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, credentialCheckTimeout)
			_, err = cred.GetToken(cctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
			cancel()
		}
		if err != nil {
			disabled["azure"] = "no Entra ID token from the Azure default chain (AZURE_* environment, workload identity, managed identity, Azure CLI): " + firstLine(err)
		} else if t, err := cloudazure.New(cloudazure.Options{Credential: cred, Subscriptions: z.Subscriptions, CostScopes: z.CostScopes,
			CostServices: z.CostServices, CostDays: z.CostDays, CarbonMonths: z.CarbonMonths, Endpoint: z.Endpoint,
			SkipCost: z.SkipCost, SkipCarbon: z.SkipCarbon}); err != nil {
			disabled["azure"] = err.Error()
		} else {
			tasks = append(tasks, t)
		}
	}
	if g := cfg.GCP; g != nil {
		cctx, cancel := context.WithTimeout(ctx, credentialCheckTimeout)
		_, err := google.FindDefaultCredentials(cctx, bigquery.Scope)
		cancel()
		if err != nil {
			disabled["gcp"] = "no Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud ADC file, GKE workload identity / metadata server): " + firstLine(err)
		} else {
			var opts []option.ClientOption
			if g.Endpoint != "" {
				opts = append(opts, option.WithEndpoint(g.Endpoint))
			}
			t, err := cloudgcp.New(ctx, cloudgcp.Options{BillingProject: g.BillingProject, Table: g.Table, Projects: g.Projects,
				Months: g.Months, ClientOptions: opts})
			if err != nil {
				disabled["gcp"] = fmt.Sprintf("bigquery client: %s", firstLine(err))
			} else {
				tasks = append(tasks, t)
				closers = append(closers, func() { t.Close() })
			}
		}
	}
	for _, t := range tasks {
		logger.Info("provider enabled", "provider", t.Name())
	}
	return tasks, disabled, closeAll
}
