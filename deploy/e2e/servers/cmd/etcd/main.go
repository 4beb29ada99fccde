// Command etcd is the etcd server the pinned Kubernetes release depends on, built from
// go.etcd.io/etcd/server/v3 for aiwatt's deployment tests (deploy/e2e). It is never shipped.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
