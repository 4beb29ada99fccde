// Package kubeapi is aiwatt's small Kubernetes API client: where the API
// server is and how to authenticate to it (in-cluster service account or a
// kubeconfig file), GET requests with the API's Status errors, and the
// Kubernetes quantity syntax. It replaces client-go, whose scheme
// registration and API types cost the agent megabytes of memory for the two
// requests it makes (list and watch pods of its node, get its node).
//
// It supports what a node agent needs and refuses the rest by name: exec
// credential plugins, auth-provider, impersonation and proxy-url in a
// kubeconfig are errors, never silently ignored. It must not import
// k8s.io modules; the agent binary links none of them.
package kubeapi
