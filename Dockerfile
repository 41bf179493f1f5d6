# syntax=docker/dockerfile:1
# The Adaptive Operator image: `docker build -t adaptive-operator .`
#
# Base image: both stages use the same tag, so the virtualenv built in the first stage finds the
# same Python at the same path in the second. The tag is pinned to a minor Python version and
# floats over its patch releases and Debian security updates. For bit-for-bit reproducible builds
# pin the digest as well, e.g. `python:3.11-slim@sha256:<digest>` (`docker buildx imagetools
# inspect python:3.11-slim` prints it), and let Dependabot or Renovate keep it fresh.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The dependencies first, in a layer that only pyproject.toml invalidates: a change to the sources
# rebuilds the small layer below, not the minutes of downloading and installing these.
COPY pyproject.toml ./
RUN python -m venv /opt/venv \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt
# Only what the wheel is built from, so that other changes do not invalidate this layer.
COPY README.md ./
COPY operator ./operator
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-deps /wheels/*.whl

FROM ${PYTHON_IMAGE}
COPY --from=builder /opt/venv /opt/venv
# The root filesystem is read-only in the cluster: caches and HOME go to the /tmp emptyDir.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
# A numeric non-root user (the distroless "nonroot" uid), so Kubernetes can verify runAsNonRoot.
USER 65532:65532
EXPOSE 8080 8081
# Exec form: the operator is PID 1 and gets SIGTERM directly; no shell is involved.
ENTRYPOINT ["adaptive-operator", "run"]
