# aiwatt container image: the node agent (DaemonSet) and the other subcommands (carbon, gate).
#
# The default target follows the Prometheus exporters' convention (node_exporter's Dockerfile): the
# image copies the binary that `make build` made, so building the image needs no Go image.
#
#   make image                        # make build, then podman/docker build of this file
#   docker run --rm -p 28290:28290 -v /sys:/host/sys:ro -v /proc:/host/proc:ro \
#     aiwatt:$(git describe --tags --always) agent --path.sysfs=/host/sys --path.procfs=/host/proc
#
# Everything built inside docker (no Go on the host): the "full" target compiles in golang:1.26.8.
#
#   docker build --target full --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t aiwatt .
#
# cgo stays on so that the NVML backend can dlopen libnvidia-ml.so.1, which the NVIDIA container
# toolkit mounts into the container at run time (NVIDIA_DRIVER_CAPABILITIES=utility). That needs a
# glibc runtime with a dynamic loader and an ld.so.cache, hence Debian slim rather than scratch or a
# static distroless image. A binary from `make build` must be linked against glibc 2.36 or older
# (Debian 12, Ubuntu 22.04 and older hosts); the full target's build stage uses the same Debian
# release as the runtime, so its binary's glibc symbols are all present.
#
# Base images are pinned to exact tags (Go patch release; Debian point-in-time snapshot). Bump both
# together; pin digests as well (FROM image:tag@sha256:...) where your registry policy asks for it.

# base: the runtime without aiwatt (CA certificates for the carbon-intensity providers' HTTPS APIs).
FROM debian:bookworm-20260918-slim AS base
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# What the NVIDIA container toolkit should inject when the container runs under it: NVML and
# nvidia-smi only, no CUDA. Which GPUs are visible is the runtime's choice (the Helm chart sets
# NVIDIA_VISIBLE_DEVICES=all for the agent).
ENV NVIDIA_DRIVER_CAPABILITIES=utility
# Non-root by default (nobody). RAPL energy_uj is readable by root only (CVE-2020-8694: mode 0400,
# owner root). The agent's DaemonSet therefore runs this image as user 0 with every capability
# dropped and a read-only root filesystem (the Helm chart's default; `docker run --user 0
# --cap-drop ALL --read-only`): user 0 reads the counters as their owner and needs no capability.
# As nobody the agent reports aiwatt_source_up{source="rapl"} 0 and serves the CPU power model.
USER 65534:65534
EXPOSE 28290 28291
ENTRYPOINT ["/usr/bin/aiwatt"]
CMD ["agent"]
# The labels that do not change between builds; version, revision and created are set by the final
# stages, after the binary is copied (a build cache keyed on the instruction text alone must not
# reuse them across versions).
LABEL org.opencontainers.image.title="aiwatt" \
      org.opencontainers.image.description="Energy and carbon of AI workloads: node agent (RAPL, NVML, dcgm-exporter), carbon-intensity service and CI energy gate" \
      org.opencontainers.image.url="https://github.com/inferensys/aiwatt" \
      org.opencontainers.image.source="https://github.com/inferensys/aiwatt" \
      org.opencontainers.image.documentation="https://github.com/inferensys/aiwatt/blob/main/docs/deploy.md" \
      org.opencontainers.image.vendor="inferensys" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-20260918-slim"

# build: the Go toolchain stage of the full target only.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
ARG BRANCH=unknown
ARG CREATED=unknown
RUN CGO_ENABLED=1 go build -trimpath -buildvcs=false \
      -ldflags "-s -w \
        -X github.com/prometheus/common/version.Version=${VERSION} \
        -X github.com/prometheus/common/version.Revision=${REVISION} \
        -X github.com/prometheus/common/version.Branch=${BRANCH} \
        -X github.com/prometheus/common/version.BuildUser=aiwatt \
        -X github.com/prometheus/common/version.BuildDate=${CREATED}" \
      -o /out/aiwatt ./cmd/aiwatt \
 && /out/aiwatt --version

# full: everything built inside docker (`docker build --target full`).
FROM base AS full
COPY --from=build /out/aiwatt /usr/bin/aiwatt
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

# The default target: the binary `make build` wrote to bin/aiwatt.
FROM base AS release
COPY --chmod=0755 bin/aiwatt /usr/bin/aiwatt
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
