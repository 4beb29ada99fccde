// Command kube-apiserver is the Kubernetes API server of the release this module pins, built from
// k8s.io/kubernetes for aiwatt's deployment tests (deploy/e2e). It is never shipped.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
