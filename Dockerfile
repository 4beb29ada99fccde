# aiwatt container image: the node agent (DaemonSet) and the other subcommands.
#
#   docker build -t aiwatt .
#   docker run --rm -p 28290:28290 -v /sys:/host/sys:ro -v /proc:/host/proc:ro \
#     aiwatt agent --path.sysfs=/host/sys --path.procfs=/host/proc
#
# cgo stays on so that the NVML backend can dlopen libnvidia-ml.so.1, which the
# NVIDIA container toolkit mounts into the container at run time. The runtime
# image is glibc-based (Debian slim) for the same reason.

ARG GO_VERSION=1.26.8
ARG DEBIAN_RELEASE=bookworm

FROM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN CGO_ENABLED=1 go build -trimpath \
      -ldflags "-s -w -X github.com/prometheus/common/version.Version=${VERSION} -X github.com/prometheus/common/version.Revision=${REVISION}" \
      -o /out/aiwatt ./cmd/aiwatt

FROM debian:${DEBIAN_RELEASE}-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/aiwatt /usr/bin/aiwatt
# Non-root by default. Reading RAPL energy_uj needs root (CVE-2020-8694): a
# DaemonSet that wants RAPL sets runAsUser: 0 (read-only root filesystem,
# all capabilities dropped but DAC_READ_SEARCH); without it the agent reports
# rapl down and falls back to the CPU power model.
USER 65534:65534
EXPOSE 28290
ENTRYPOINT ["/usr/bin/aiwatt"]
CMD ["agent"]
