# syntax=docker/dockerfile:1
#
# certscope container image.
#
#   docker build -t certscope:dev .
#   docker run --rm -p 9793:9793 --read-only --tmpfs /tmp certscope:dev
#
# Two stages: the builder turns the repository into a wheel and installs it with its
# dependencies into a virtual environment at /opt/certscope; the runtime stage copies only that
# environment. Nothing is downloaded when the container runs.
#
# The runtime runs as the fixed non-root UID/GID 65532 and writes nothing outside /tmp, so it
# works with a read-only root filesystem (mount an emptyDir or tmpfs at /tmp). Byte code is
# compiled at build time because the running container cannot write it.
#
# compileall may report a module written for a newer Python (javaobj-py3 ships one that is never
# imported on 3.11) and exit 1; everything else is still compiled, so that status is ignored.
#
# PYTHON_IMAGE is the same in both stages on purpose: the virtual environment refers to the
# interpreter at /usr/local/bin/python3.11 of the base image. Pin a digest for reproducible
# builds: --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:...
#
# Without a registry: scripts/build-image.sh builds this file with Buildah on a Debian base
# made by debootstrap (--build-arg PYTHON_IMAGE=localhost/certscope-base:bookworm).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel needs (see .dockerignore): the package metadata and the package.
COPY pyproject.toml README.md ./
COPY exporter ./exporter

# twofish (a dependency of pyjks) is published as source only: building it needs a C compiler
# and the Python headers, which slim and debootstrap-made bases leave out (builder stage only).
RUN if ! command -v gcc >/dev/null \
     || [ ! -e "$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends gcc libc6-dev \
           $(python -c 'import sys; print("" if sys.prefix == "/usr/local" else "python3-dev")') \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && python -m venv /opt/certscope \
 && /opt/certscope/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/certscope/bin/pip install /wheels/certscope-*.whl \
 && /opt/certscope/bin/pip uninstall --yes pip \
 && { /opt/certscope/bin/python -m compileall -q /opt/certscope/lib || true; } \
 && /opt/certscope/bin/certscope --version


FROM ${PYTHON_IMAGE}

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="certscope" \
      org.opencontainers.image.description="Prometheus exporter for TLS endpoints and certificate stores (files, Kubernetes Secrets, Vault) that produces SOC 2 evidence" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/certscope/certscope" \
      org.opencontainers.image.url="https://github.com/certscope/certscope" \
      org.opencontainers.image.documentation="https://github.com/certscope/certscope/blob/main/README.md" \
      org.opencontainers.image.vendor="certscope" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"

COPY --from=builder /opt/certscope /opt/certscope

# HOME=/tmp: anything that looks for a home directory finds a writable one; the UID has no
# passwd entry and needs none. MALLOC_MMAP_THRESHOLD_: a /metrics body at fleet scale is
# tens of MB in per-family buffers; with glibc's threshold fixed at 1 MiB they are mapped
# and returned on free instead of fragmenting the heap (docs/benchmarks.md, fleet memory
# with a scrape every cycle: 5.6-6.0 KB per target instead of up to 12.5 KB).
ENV PATH=/opt/certscope/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MALLOC_MMAP_THRESHOLD_=1048576

WORKDIR /tmp
USER 65532:65532

EXPOSE 9793

# No curl in the image: Python's urllib. urlopen raises (exit 1) on anything but 2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9793/-/healthy', timeout=4)"]

ENTRYPOINT ["certscope"]
CMD ["serve"]
