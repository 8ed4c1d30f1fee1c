# gitops-cron: a GitOps reconcile job meant to run as a Kubernetes CronJob.
#
# The base image is pinned to an exact Python patch release on Debian bookworm.
# For fully reproducible builds, also pin it by digest once you have resolved
# it from your registry (docker buildx imagetools inspect python:3.11.15-slim-bookworm):
#   FROM python:3.11.15-slim-bookworm@sha256:<digest>
FROM python:3.11.15-slim-bookworm

ARG VERSION=0.1.0

LABEL org.opencontainers.image.title="gitops-cron" \
      org.opencontainers.image.description="Clones a git repository, server-side applies its manifests with an ApplySet inventory, prunes what left git, and exits." \
      org.opencontainers.image.source="https://github.com/gitops-cron/gitops-cron" \
      org.opencontainers.image.url="https://github.com/gitops-cron/gitops-cron" \
      org.opencontainers.image.documentation="https://github.com/gitops-cron/gitops-cron#readme" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.vendor="gitops-cron" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.15-slim-bookworm"

# git clones the configuration repository; openssh-client is git's transport
# for ssh:// and scp-style URLs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# OpenSSH refuses to run for a uid that has no passwd entry ("No user exists
# for uid ..."), so the numeric runtime user gets one. Its home is /tmp, the
# only writable path when the root filesystem is mounted read-only.
RUN groupadd --gid 65532 gitops \
 && useradd --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin gitops

WORKDIR /app

COPY requirements.txt /app/requirements.txt
RUN pip install --no-cache-dir --disable-pip-version-check -r /app/requirements.txt

COPY gitops_cron/ /app/gitops_cron/
COPY reconcile.py /app/reconcile.py
# Compile at build time: at run time nothing under /app may be written.
RUN python -m compileall -q /app

ENV HOME=/tmp \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 65532:65532

ENTRYPOINT ["python", "/app/reconcile.py"]
