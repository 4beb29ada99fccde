package kubeapi

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/common/version"
	"go.yaml.in/yaml/v3"
)

// Config says where the API server is and how to authenticate to it.
type Config struct {
	// Host is the API server's base URL, e.g. https://10.96.0.1:443.
	Host string
	// TLS is the client's TLS configuration (server CA, server name, client
	// certificate); nil means the system roots.
	TLS *tls.Config
	// BearerToken is a static bearer token.
	BearerToken string
	// BearerTokenFile is a file holding the bearer token, re-read whenever
	// it changes (bound service-account tokens rotate hourly); it takes
	// precedence over BearerToken.
	BearerTokenFile string
	// Username and Password are HTTP basic credentials.
	Username string
	// Password goes with Username.
	Password string
	// DisableCompression turns off gzip responses.
	DisableCompression bool
	// UserAgent is sent with every request; empty means "aiwatt/<version>".
	UserAgent string
}

// serviceAccountDir is where a pod's service account is mounted; tests
// change it.
var serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Load returns the configuration from a kubeconfig file when one is given,
// else in-cluster (the pod's service account).
func Load(kubeconfig string) (*Config, error) {
	if kubeconfig != "" {
		return LoadKubeconfig(kubeconfig)
	}
	return InCluster()
}

// InCluster returns the configuration of a pod: the API server from
// KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, the service
// account's token file (re-read as it rotates) and CA certificate.
func InCluster() (*Config, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("in-cluster Kubernetes config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not running in a pod?); give --kubernetes.kubeconfig")
	}
	tokenFile := filepath.Join(serviceAccountDir, "token")
	if _, err := os.ReadFile(tokenFile); err != nil {
		return nil, fmt.Errorf("in-cluster Kubernetes config: service account token: %w", err)
	}
	caFile := filepath.Join(serviceAccountDir, "ca.crt")
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("in-cluster Kubernetes config: %w", err)
	}
	pool, err := certPool(ca, caFile)
	if err != nil {
		return nil, fmt.Errorf("in-cluster Kubernetes config: %w", err)
	}
	return &Config{
		Host:            "https://" + net.JoinHostPort(host, port),
		TLS:             &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		BearerTokenFile: tokenFile,
	}, nil
}

// kubeconfigFile is the part of a kubeconfig file aiwatt reads. Clusters and
// users stay YAML nodes until one is chosen: only the chosen ones are
// checked for fields aiwatt does not support.
type kubeconfigFile struct {
	CurrentContext string `yaml:"current-context"`
	Clusters       []struct {
		Name    string    `yaml:"name"`
		Cluster yaml.Node `yaml:"cluster"`
	} `yaml:"clusters"`
	Users []struct {
		Name string    `yaml:"name"`
		User yaml.Node `yaml:"user"`
	} `yaml:"users"`
	Contexts []kubeContext `yaml:"contexts"`
}

// kubeContext is a kubeconfig context entry.
type kubeContext struct {
	Name    string `yaml:"name"`
	Context struct {
		Cluster string `yaml:"cluster"`
		User    string `yaml:"user"`
	} `yaml:"context"`
}

// kubeCluster is a kubeconfig cluster entry.
type kubeCluster struct {
	Server                   string `yaml:"server"`
	CertificateAuthority     string `yaml:"certificate-authority"`
	CertificateAuthorityData string `yaml:"certificate-authority-data"`
	InsecureSkipTLSVerify    bool   `yaml:"insecure-skip-tls-verify"`
	TLSServerName            string `yaml:"tls-server-name"`
	DisableCompression       bool   `yaml:"disable-compression"`
}

// kubeUser is a kubeconfig user (AuthInfo) entry.
type kubeUser struct {
	Token                 string `yaml:"token"`
	TokenFile             string `yaml:"tokenFile"`
	ClientCertificate     string `yaml:"client-certificate"`
	ClientCertificateData string `yaml:"client-certificate-data"`
	ClientKey             string `yaml:"client-key"`
	ClientKeyData         string `yaml:"client-key-data"`
	Username              string `yaml:"username"`
	Password              string `yaml:"password"`
}

// Fields of a cluster and a user that aiwatt reads ("extensions" carries
// only tool metadata); any other field of the chosen entries is refused.
var (
	clusterFields = []string{"server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify",
		"tls-server-name", "disable-compression", "extensions"}
	userFields = []string{"token", "tokenFile", "client-certificate", "client-certificate-data", "client-key",
		"client-key-data", "username", "password", "extensions"}
	// why says what to do instead of fields users are likely to meet.
	why = map[string]string{
		"exec":          "exec credential plugins are not supported; give the user a token, tokenFile or client certificate",
		"auth-provider": "auth-provider plugins are not supported; give the user a token, tokenFile or client certificate",
		"proxy-url":     "proxies are not supported in the kubeconfig; HTTPS_PROXY and NO_PROXY are honoured",
		"as":            "impersonation is not supported",
		"as-uid":        "impersonation is not supported",
		"as-groups":     "impersonation is not supported",
		"as-user-extra": "impersonation is not supported",
	}
)

// LoadKubeconfig reads the current context of a kubeconfig file: its
// cluster's server, certificate-authority(-data), insecure-skip-tls-verify,
// tls-server-name and disable-compression, and its user's token,
// tokenFile, client-certificate(-data) with client-key(-data), or
// username and password. Relative paths are relative to the file's
// directory. Fields it cannot honour (exec, auth-provider, impersonation,
// proxy-url, unknown fields) are refused by name.
func LoadKubeconfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read kubeconfig: %w", err)
	}
	cfg, err := parseKubeconfig(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

func parseKubeconfig(data []byte, dir string) (*Config, error) {
	var kc kubeconfigFile
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return nil, err
	}
	if kc.CurrentContext == "" {
		return nil, errors.New("no current-context")
	}
	ctxIdx := slices.IndexFunc(kc.Contexts, func(c kubeContext) bool { return c.Name == kc.CurrentContext })
	if ctxIdx < 0 {
		return nil, fmt.Errorf("current-context %q is not among the contexts", kc.CurrentContext)
	}
	kctx := kc.Contexts[ctxIdx].Context
	var clusterNode, userNode *yaml.Node
	for i := range kc.Clusters {
		if kc.Clusters[i].Name == kctx.Cluster {
			clusterNode = &kc.Clusters[i].Cluster
		}
	}
	if clusterNode == nil {
		return nil, fmt.Errorf("context %q: cluster %q not found", kc.CurrentContext, kctx.Cluster)
	}
	for i := range kc.Users {
		if kc.Users[i].Name == kctx.User {
			userNode = &kc.Users[i].User
		}
	}
	var cl kubeCluster
	if err := decodeEntry(clusterNode, "cluster "+kctx.Cluster, clusterFields, &cl); err != nil {
		return nil, err
	}
	var u kubeUser
	if userNode != nil {
		if err := decodeEntry(userNode, "user "+kctx.User, userFields, &u); err != nil {
			return nil, err
		}
	} else if kctx.User != "" {
		return nil, fmt.Errorf("context %q: user %q not found", kc.CurrentContext, kctx.User)
	}
	return buildConfig(cl, u, dir)
}

// decodeEntry decodes a cluster or user entry after checking that it has
// only known fields.
func decodeEntry(n *yaml.Node, what string, known []string, out any) error {
	if n.Kind == 0 {
		return nil // absent: an empty entry
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: line %d: not a mapping", what, n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if slices.Contains(known, k.Value) {
			continue
		}
		if w, ok := why[k.Value]; ok {
			return fmt.Errorf("%s: line %d: field %s: %s", what, k.Line, k.Value, w)
		}
		return fmt.Errorf("%s: line %d: field %s is not supported by aiwatt's Kubernetes client", what, k.Line, k.Value)
	}
	if err := n.Decode(out); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// buildConfig turns a cluster and a user into a Config.
func buildConfig(cl kubeCluster, u kubeUser, dir string) (*Config, error) {
	if cl.Server == "" {
		return nil, errors.New("cluster has no server")
	}
	host := cl.Server
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	if parsed, err := url.Parse(host); err != nil || parsed.Host == "" || (parsed.Scheme != "https" && parsed.Scheme != "http") {
		return nil, fmt.Errorf("cluster server %q: not an http(s) URL", cl.Server)
	}
	cfg := &Config{Host: host, DisableCompression: cl.DisableCompression, BearerToken: u.Token,
		Username: u.Username, Password: u.Password}
	if u.TokenFile != "" {
		cfg.BearerTokenFile = resolve(dir, u.TokenFile)
		if _, err := os.ReadFile(cfg.BearerTokenFile); err != nil {
			return nil, fmt.Errorf("user tokenFile: %w", err)
		}
	}
	if (cfg.BearerToken != "" || cfg.BearerTokenFile != "") && (cfg.Username != "" || cfg.Password != "") {
		return nil, errors.New("user has both a token and a username/password; give one")
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cl.TLSServerName}
	ca, caWhere, err := material(dir, cl.CertificateAuthorityData, cl.CertificateAuthority, "certificate-authority")
	if err != nil {
		return nil, err
	}
	switch {
	case ca != nil && cl.InsecureSkipTLSVerify:
		return nil, errors.New("cluster has both insecure-skip-tls-verify and a certificate-authority; give one")
	case ca != nil:
		if t.RootCAs, err = certPool(ca, caWhere); err != nil {
			return nil, err
		}
	case cl.InsecureSkipTLSVerify:
		t.InsecureSkipVerify = true
	}
	certPEM, certWhere, err := material(dir, u.ClientCertificateData, u.ClientCertificate, "client-certificate")
	if err != nil {
		return nil, err
	}
	keyPEM, _, err := material(dir, u.ClientKeyData, u.ClientKey, "client-key")
	if err != nil {
		return nil, err
	}
	switch {
	case certPEM != nil && keyPEM != nil:
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("user client certificate %s: %w", certWhere, err)
		}
		t.Certificates = []tls.Certificate{pair}
	case certPEM != nil || keyPEM != nil:
		return nil, errors.New("user has a client certificate or key without the other")
	}
	if strings.HasPrefix(host, "https://") {
		cfg.TLS = t
	}
	return cfg, nil
}

// material returns inline base64 data (field-data) or a file's contents
// (field), nil when neither is set, and where it came from.
func material(dir, data, file, field string) ([]byte, string, error) {
	switch {
	case data != "":
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(data))
		if err != nil {
			return nil, "", fmt.Errorf("%s-data: %w", field, err)
		}
		return b, field + "-data", nil
	case file != "":
		path := resolve(dir, file)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", field, err)
		}
		return b, path, nil
	}
	return nil, "", nil
}

// resolve makes a kubeconfig path absolute against the file's directory.
func resolve(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// certPool parses PEM certificates.
func certPool(pemData []byte, where string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bytes.TrimSpace(pemData)) {
		return nil, fmt.Errorf("CA certificates %s: no PEM certificate found", where)
	}
	return pool, nil
}

// userAgent is the User-Agent of cfg's requests.
func (c *Config) userAgent() string {
	if c.UserAgent != "" {
		return c.UserAgent
	}
	if version.Version == "" {
		return "aiwatt/unknown"
	}
	return "aiwatt/" + version.Version
}
