# syntax=docker/dockerfile:1
# Images for ics-peer-discovery, built in stages so compilers and build caches never
# reach what runs:
#   docker build -t ics-discovery:TAG .                      the service (default target)
#   docker build --target provider -t ics-provider:TAG .     a provider chain node (Kind testnet)
# Both run as an unprivileged user (uid/gid 65532) and need no writable root filesystem.

ARG PYTHON_VERSION=3.11
ARG GO_VERSION=1.23
ARG DEBIAN_RELEASE=bookworm

# ---- the service: build a self-contained virtualenv ---------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS service-build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# A compiler only for dependencies that ship no wheel for this platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/ics-discovery
WORKDIR /src
# Dependencies first, so changing the code does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p chainmonitor discovery lbmanager \
 && touch chainmonitor/__init__.py discovery/__init__.py lbmanager/__init__.py \
 && /opt/ics-discovery/bin/pip install . \
 && /opt/ics-discovery/bin/pip uninstall -y ics-peer-discovery
COPY chainmonitor ./chainmonitor
COPY discovery ./discovery
COPY lbmanager ./lbmanager
# The root filesystem is read-only at run time: compile the bytecode now.
RUN /opt/ics-discovery/bin/pip install --no-deps . \
 && /opt/ics-discovery/bin/python -m compileall -q /opt/ics-discovery/lib \
 && /opt/ics-discovery/bin/ics-discovery --help > /dev/null

# ---- a provider chain node for the Kind testnet -------------------------------
FROM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS provider-build
ARG ICS_VERSION=7.0.1
ENV GOFLAGS=-mod=readonly
WORKDIR /src/tools/ics
COPY tools/ics/go.mod tools/ics/go.sum ./
RUN go mod download
COPY tools/ics/ ./
RUN v=github.com/cosmos/cosmos-sdk/version \
 && go build -trimpath \
      -ldflags "-s -w -X $v.Name=interchain-security -X $v.AppName=interchain-security-pd -X $v.Version=v${ICS_VERSION}" \
      -o /out/interchain-security-pd . \
 && /out/interchain-security-pd version

FROM debian:${DEBIAN_RELEASE}-slim AS provider
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 ics \
 && useradd --system --uid 65532 --gid 65532 --home-dir /home/ics --create-home --shell /usr/sbin/nologin ics
COPY --from=provider-build /out/interchain-security-pd /usr/local/bin/interchain-security-pd
USER 65532:65532
WORKDIR /home/ics
EXPOSE 26656 26657 9090 1317
ENTRYPOINT ["interchain-security-pd"]

# ---- the service image (default target: keep this stage last) -----------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS service
RUN groupadd --system --gid 65532 ics \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin ics
COPY --from=service-build /opt/ics-discovery /opt/ics-discovery
ENV PATH=/opt/ics-discovery/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
# gRPC API, then /metrics, /healthz and /readyz.
EXPOSE 9400 9401
ENTRYPOINT ["ics-discovery"]
CMD ["run"]
