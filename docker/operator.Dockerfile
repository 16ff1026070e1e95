# syntax=docker/dockerfile:1
# The operator image: kopf, the Kubernetes client and the e2gan_operator package. No torch.
# Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t ghcr.io/e2gan-dev/e2gan-operator:0.1.0 .
# The Helm chart (charts/e2gan-operator) runs it as `kopf run -m e2gan_operator.main ...`;
# tests/docker checks that this file, the chart and pyproject.toml agree.
FROM python:3.11.13-slim-bookworm

LABEL org.opencontainers.image.title="e2gan-operator" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.description="Kubernetes operator that trains E2GAN concept adapters with KubeRay" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/e2gan
COPY pyproject.toml README.md ./
COPY e2gan_api/ e2gan_api/
COPY catalog/ catalog/
COPY operator/ operator/

# Exact versions of the base dependencies and of the `operator` extra (no torch, no Ray).
# Byte-code is compiled here because the root filesystem is read-only at run time.
RUN pip install --no-cache-dir "./[operator]" \
        "pydantic==2.14.4" \
        "pyyaml==6.0.4" \
        "boto3==1.44.8" \
        "kopf==1.45.2" \
        "kubernetes==37.0.1" \
        "aiohttp==3.14.5" \
        "prometheus-client==0.26.0" \
    && python -m compileall -q /usr/local/lib/python3.11/site-packages \
    && useradd --uid 65532 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin e2gan

# Numeric, so that Kubernetes can verify runAsNonRoot.
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["kopf"]
CMD ["run", "-m", "e2gan_operator.main", "--liveness=http://0.0.0.0:8080/healthz", "--all-namespaces"]
