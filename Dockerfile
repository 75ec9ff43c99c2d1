# netguard admission webhook image.
#   docker build -t REGISTRY/netguard:0.1.0 .
# Two stages: the builder installs netguard and its pinned dependencies (constraints.txt, no dev
# extras) into a virtual environment; the final stage copies only that venv, the guardrail catalog and
# the default configuration. No compilers, no pip cache, no certificates or keys: TLS comes from a
# Secret at run time. tests/deploy/test_image_entrypoint.py runs this file's final-stage ENTRYPOINT
# with its ENV (there is no container engine where the tests run).
#
# Base images are meant to be pinned by digest (FROM python:3.11-slim@sha256:...), written by
# `python3 deploy/pin_images.py` where a registry is reachable (`--check` lists what is not pinned yet;
# docs/operations.md, "Images"). The python tag below is not pinned yet: its digest could not be
# resolved where this was written (no registry), and a digest is never typed in by hand.

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/netguard/venv
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY webhook/ webhook/
# The wheel carries the catalog (webhook/catalog, pyproject.toml); the image still serves /etc/netguard/policies.
COPY policies/ policies/
RUN /opt/netguard/venv/bin/pip install -c constraints.txt . \
 && /opt/netguard/venv/bin/pip uninstall --yes pip setuptools wheel

FROM python:3.11-slim
LABEL org.opencontainers.image.title="netguard" \
      org.opencontainers.image.description="Kubernetes admission guardrails for NetworkPolicy and Cilium policies" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /opt/netguard/venv /opt/netguard/venv
COPY policies/ /etc/netguard/policies/
COPY deploy/base/config.yaml /etc/netguard/config.yaml
# Writable paths: only $TMPDIR (/tmp, an emptyDir in the Deployment) for gunicorn's worker heartbeat
# files and the Prometheus multiprocess directory; the root filesystem is read-only.
ENV PATH=/opt/netguard/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NETGUARD_POLICIES_DIR=/etc/netguard/policies \
    NETGUARD_CONFIG=/etc/netguard/config.yaml \
    NETGUARD_TLS_CERT=/etc/netguard/tls/tls.crt \
    NETGUARD_TLS_KEY=/etc/netguard/tls/tls.key
# A read-only working directory: nothing is written relative to it.
WORKDIR /
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
EXPOSE 8443 8444
# The image is the netguard command: by default `netguard serve`, which validates the configuration and
# compiles every policy, then execs gunicorn (webhook/serve/gunicorn_conf.py); any other subcommand given to
# `docker run IMAGE ...` replaces CMD, e.g. `docker run --rm -v "$PWD:/src" IMAGE check /src`, and reads
# the same catalog and configuration through the ENV above.
ENTRYPOINT ["netguard"]
CMD ["serve"]
