# syntax=docker/dockerfile:1
# Multi-stage: wheels are built in the builder, the runtime image has no compiler and runs as
# an unprivileged user. The same image runs the web process (gunicorn), the worker and beat.

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=chatai.settings.production \
    PORT=8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/chatai-metrics
RUN groupadd --system chatai && useradd --system --gid chatai --home /app chatai
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY --chown=chatai:chatai . /app
# collectstatic needs settings but no secrets or database: give it throwaway values.
RUN DEBUG=false SECRET_KEY=build-only PII_ENCRYPTION_KEYS=build-only PII_LOOKUP_KEY=build-only \
    python manage.py collectstatic --no-input \
    && mkdir -p /app/media "$PROMETHEUS_MULTIPROC_DIR" \
    && chown -R chatai:chatai /app/media /app/staticfiles "$PROMETHEUS_MULTIPROC_DIR"
USER chatai
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -m core.healthcheck
CMD ["sh", "-c", "gunicorn chatai.wsgi:application --bind 0.0.0.0:${PORT} --workers ${WEB_CONCURRENCY:-3} --threads ${GUNICORN_THREADS:-4} --timeout 30 --access-logfile - --forwarded-allow-ips='*'"]
