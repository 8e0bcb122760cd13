# syntax=docker/dockerfile:1
#
# One Dockerfile, one image per service. Build with the service name as the extra:
#
#   docker build --build-arg SERVICE_EXTRA=ingest   -t genline/ingest:TAG .
#   docker build --build-arg SERVICE_EXTRA=ledger   -t genline/ledger:TAG .
#   docker build --build-arg SERVICE_EXTRA=router   -t genline/router:TAG .
#   docker build --build-arg SERVICE_EXTRA=delivery -t genline/delivery:TAG .
#   docker build --build-arg SERVICE_EXTRA=scorer   -t genline/scorer:TAG .      # CPU torch
#   docker build --build-arg SERVICE_EXTRA=scorer \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 \
#     -t genline/scorer-gpu:TAG .                                                 # CUDA torch (overlays/gpu)
#
# No model weights are fetched at build time; the runtime root filesystem is read-only.

ARG PYTHON_IMAGE=python:3.11-slim

# --------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

ARG SERVICE_EXTRA
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN case "${SERVICE_EXTRA}" in \
      ingest|ledger|router|scorer|delivery) ;; \
      *) echo "build arg SERVICE_EXTRA must be one of: ingest ledger router scorer delivery (got '${SERVICE_EXTRA}')" >&2; exit 1 ;; \
    esac

# Compilers only live in this stage, for any dependency without a wheel.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv "${VIRTUAL_ENV}"

# Scorer only: torch from the PyTorch index (CPU by default), the exact version, without
# its dependencies, which come hashed from the scorer's lock below; never PyPI's
# CUDA-bundling build.
RUN set -eu; \
    if [ "${SERVICE_EXTRA}" = "scorer" ]; then \
      pip install --no-deps --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"; \
    fi

WORKDIR /src
COPY . .
# Every package from a locked set (requirements/*.lock: pinned with the hashes of its
# files, `make lock`): the build's tools, then the service's own, then the service itself
# without resolving anything again. gRPC stubs are generated from proto/ here and shipped
# in the package (never hand-edited).
RUN pip install --require-hashes --no-deps -r requirements/build.lock && python -m services.common.protos
RUN pip install --require-hashes --no-deps -r "requirements/${SERVICE_EXTRA}.lock" \
 && pip install --no-deps .

# Fail the build, not the pod: the module must be importable from the installed
# distribution (run outside /src so the source tree cannot mask a packaging bug),
# and a CPU scorer image must not carry CUDA wheels.
WORKDIR /
RUN set -eu; \
    python -c "import importlib.util, sys; m = 'services.' + sys.argv[1]; sys.exit(0 if importlib.util.find_spec(m) else 'not installed: ' + m)" "${SERVICE_EXTRA}"; \
    if [ "${SERVICE_EXTRA}" = "scorer" ]; then \
      python -c "import importlib.metadata as md; print('torch', md.version('torch'))"; \
      case "${TORCH_INDEX_URL}" in \
        */cpu) if pip list --format=freeze | grep -i '^nvidia-'; then echo "CUDA wheels found in a CPU scorer image" >&2; exit 1; fi ;; \
      esac; \
    fi

# --------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

ARG SERVICE_EXTRA
# Extra Debian runtime libraries, if a dependency needs one (e.g. "libpq5").
ARG RUNTIME_APT_PACKAGES=""

LABEL org.opencontainers.image.title="genline-${SERVICE_EXTRA}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    SERVICE=${SERVICE_EXTRA} \
    GENLINE_HTTP_HOST=0.0.0.0 \
    GENLINE_HTTP_PORT=8080

# tini: PID 1 that forwards SIGTERM to python (services drain on SIGTERM) and reaps zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ${RUNTIME_APT_PACKAGES} \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 genline \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/genline --create-home \
      --shell /usr/sbin/nologin genline

COPY --from=builder /opt/venv /opt/venv

# Numeric so that Kubernetes can verify runAsNonRoot.
USER 10001:10001
WORKDIR /home/genline
EXPOSE 8080

ENTRYPOINT ["/usr/bin/tini", "--"]
# Exec-form CMD does not expand variables, so a shell expands ${SERVICE} and
# then execs python (python, not sh, receives the signals).
CMD ["sh", "-c", "exec python -m \"services.${SERVICE}\""]
