# aiwatt container image: the node agent (DaemonSet) and the other subcommands (carbon, gate).
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t aiwatt .
#   docker run --rm -p 28290:28290 -v /sys:/host/sys:ro -v /proc:/host/proc:ro \
#     aiwatt agent --path.sysfs=/host/sys --path.procfs=/host/proc
#
# cgo stays on so that the NVML backend can dlopen libnvidia-ml.so.1, which the NVIDIA container
# toolkit mounts into the container at run time (NVIDIA_DRIVER_CAPABILITIES=utility). That needs a
# glibc runtime with a dynamic loader and an ld.so.cache, hence Debian slim rather than scratch or a
# static distroless image; the build stage uses the same Debian release, so the binary's glibc
# symbols are all present at run time.
#
# Base images are pinned to exact tags (Go patch release; Debian point-in-time snapshot). Bump both
# together; pin digests as well (FROM image:tag@sha256:...) where your registry policy asks for it.

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
 && /out/aiwatt version

FROM debian:bookworm-20260918-slim AS runtime
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="aiwatt" \
      org.opencontainers.image.description="Energy and carbon of AI workloads: node agent (RAPL, NVML, dcgm-exporter), carbon-intensity service and CI energy gate" \
      org.opencontainers.image.url="https://github.com/inferensys/aiwatt" \
      org.opencontainers.image.source="https://github.com/inferensys/aiwatt" \
      org.opencontainers.image.documentation="https://github.com/inferensys/aiwatt/blob/main/docs/deploy.md" \
      org.opencontainers.image.vendor="inferensys" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-20260918-slim"
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/aiwatt /usr/bin/aiwatt
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
