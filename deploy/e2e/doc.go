// Package e2e proves the deployment artefacts against the real thing, on one
// machine and without a network beyond 127.0.0.1:
//
//   - the container image, built from the Dockerfile with podman (the binary
//     `make build` made), run as the Helm chart runs the agent: user 0, every
//     capability dropped, a read-only root filesystem, fixture sysfs and procfs
//     trees mounted read-only at the chart's host paths; and as the image's
//     default user, nobody;
//   - the Helm chart, installed with Helm's Go SDK on a real kube-apiserver and
//     etcd built from their Go modules (cmd/kube-apiserver, cmd/etcd of this
//     module): Pod Security admission, the Prometheus Operator CRDs, RBAC with
//     the real authorizer, and the agent's pod watcher against the server.
//
// It is its own Go module, like helm/test, so that Kubernetes and Helm never
// reach the agent's module. The binaries of kube-apiserver and etcd are built
// once per version of this module's go.sum and Go toolchain, under the
// repository's .cache/e2e. What it does not prove (kubelet, device plugin,
// container runtime of a GPU node) is listed in docs/deploy.md.
//
// `make e2e` (part of `make test`) runs deploy/e2e/setup.sh first, which
// installs podman, debootstrap and runc and makes the Dockerfile's Debian base
// image locally; the tests themselves use no network.
package e2e
