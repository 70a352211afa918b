# syntax=docker/dockerfile:1
# PIM Portal's image (README "Production" > "Container"): one image for web (gunicorn, the
# default command), the Celery worker, beat and migrations. Built from the runtime lock alone
# (every file hash-checked), static files collected at build, run as a user without rights.
#   docker build -t pim-portal .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY requirements/runtime.txt requirements/runtime.txt
RUN python -m venv /venv \
    && /venv/bin/pip install --no-input --require-hashes -r requirements/runtime.txt
COPY . .
# Build-time values only (never in the final image): collectstatic needs settings to load.
RUN DJANGO_DEBUG=0 DJANGO_SECRET_KEY=collectstatic-at-build-time-only PIM_DATA_DIR=/tmp/build \
    DJANGO_STATIC_ROOT=/app/staticfiles /venv/bin/python manage.py collectstatic --no-input --skip-checks

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 pim \
    && useradd --system --uid 10001 --gid pim --home-dir /app --no-create-home --shell /usr/sbin/nologin pim \
    && mkdir /data /checkpoints && chown pim:pim /data /checkpoints
COPY --from=build /venv /venv
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_STATIC_ROOT=/app/staticfiles PIM_DATA_DIR=/data PIM_WEB_BIND=0.0.0.0:8000
USER pim
EXPOSE 8000
# Liveness only: /readyz also checks beat and the outboxes, which a restart of web never fixes.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py"]
