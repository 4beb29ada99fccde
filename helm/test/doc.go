// Package test holds the tests of the Helm chart helm/aiwatt and of the
// Dockerfile. It is a module of its own so that Helm and the Kubernetes
// client libraries it needs never reach the aiwatt binary.
package test
