# The images, one per component; build from the repository root:
#   docker build --build-arg COMPONENT=api -t vidpipe-api .
#   docker build --build-arg COMPONENT=operator -t vidpipe-operator .
#   docker build --build-arg COMPONENT=processor -t vidpipe-processor .
#   docker build --build-arg COMPONENT=dispatcher -t vidpipe-dispatcher .
# add --build-arg BASE=localhost/vidpipe-base:bookworm to start from the local cluster's Debian
# base (hack/images.sh), which already has python3, python3-venv and ffmpeg; from plain
# debian:bookworm-slim they come from the distribution (ffmpeg 5.1, Python 3.11).
#   api        python -m vidpipe_api.main (uvicorn on :8080); ffprobe validates every upload;
#              serves the console, whose hls.js hack/ui.sh vendors first (hack/images.sh does)
#   operator   python -m vidpipe_operator; no ffmpeg: it talks to Kubernetes, MongoDB and S3
#   processor  python -m vidpipe_processor, a VideoJob's Pod; ffmpeg, writes only under /work
#   dispatcher python -m vidpipe_dispatcher; delivers webhooks, no ffmpeg, no Kubernetes client
# Only COMPONENT differs: the steps are shared, so are their cached layers.
ARG BASE=debian:bookworm-slim
ARG COMPONENT=api

FROM ${BASE} AS python
# Distribution packages only, skipped when present. (Creating a throwaway venv is the reliable
# test for python3-venv: Debian ships the ensurepip module without the wheels it needs.)
RUN if python3 -m venv /tmp/venv-check >/dev/null 2>&1 && rm -rf /tmp/venv-check; then \
        echo "python3-venv already installed"; \
    else \
        apt-get update \
        && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1
# A named user: libraries that look up the current user (kopf's peer id, getpass) need one.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent vidpipe

FROM python AS media
RUN if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then \
        echo "ffmpeg already installed"; \
    else \
        apt-get update \
        && apt-get install -y --no-install-recommends ffmpeg \
        && rm -rf /var/lib/apt/lists/*; \
    fi

# What differs per component: its system packages, its entrypoint and where it may write.
FROM media AS api-runtime
# Uploads never touch local disk (streamed to S3, probed over a presigned URL); /tmp is for
# libraries that insist on a temp dir and is an emptyDir in the chart.
ENV TMPDIR=/tmp HOME=/tmp
EXPOSE 8080
ENTRYPOINT ["python", "-m", "vidpipe_api.main"]
# Admin: kubectl exec deploy/vidpipe-api -- python -m vidpipe_api.cli create-key --owner NAME

FROM python AS operator-runtime
ENV TMPDIR=/tmp HOME=/tmp
# 8080: Prometheus metrics (VIDPIPE_OPERATOR_METRICS_PORT).
EXPOSE 8080
ENTRYPOINT ["python", "-m", "vidpipe_operator"]

FROM python AS dispatcher-runtime
ENV TMPDIR=/tmp HOME=/tmp
# 8080: /metrics and /healthz (VIDPIPE_DISPATCHER_METRICS_PORT).
EXPOSE 8080
ENTRYPOINT ["python", "-m", "vidpipe_dispatcher"]

FROM media AS processor-runtime
# /work is an emptyDir in the Pod: the only writable place (downloads, ffmpeg outputs, temp).
RUN mkdir -p /work && chown 10001:10001 /work
ENV VIDPIPE_WORK_DIR=/work TMPDIR=/work HOME=/work
WORKDIR /work
ENTRYPOINT ["python", "-m", "vidpipe_processor"]

FROM ${COMPONENT}-runtime
ARG COMPONENT
# Dependencies first so code changes keep the layer cache. An optional `cacert` build secret
# lets pip trust a TLS-intercepting proxy's CA (never in a layer).
COPY requirements/common.txt requirements/${COMPONENT}.txt requirements/constraints.txt /tmp/req/
RUN --mount=type=secret,id=cacert,required=false \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi; \
    python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install -r "/tmp/req/${COMPONENT}.txt" -c /tmp/req/constraints.txt \
    && rm -rf /tmp/req
COPY common/vidpipe /app/vidpipe
COPY ${COMPONENT}/vidpipe_${COMPONENT} /app/vidpipe_${COMPONENT}
# Byte-compile now: the root filesystem is read-only in the Pod.
RUN python -m compileall -q /app /opt/venv
ENV PYTHONPATH=/app PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
