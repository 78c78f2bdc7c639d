# syntax=docker/dockerfile:1
# Lotse: one image, one process (`lotse serve`: console, web chat, Telegram bot, relay, scheduler).
# See docs/operations.md. Build: docker build -t lotse .

# --- build stage: install the package and its pinned dependencies into a virtualenv ----------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/lotse
WORKDIR /src

# Only what the wheel is built from: no tests, benchmarks, docs, virtualenvs or local data.
COPY pyproject.toml constraints.txt README.md ./
COPY core ./core
COPY bot ./bot
COPY referral ./referral
COPY directory ./directory
COPY counsellor_console ./counsellor_console
COPY migrations ./migrations
COPY lotse ./lotse

# A regular (non-editable) install without the test extras; constraints.txt pins every version.
RUN /opt/lotse/bin/pip install -c constraints.txt .

# --- runtime stage: the virtualenv only, run as an unprivileged user --------------------------
FROM python:3.11-slim

ENV PATH=/opt/lotse/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOTSE_HOST=0.0.0.0 \
    LOTSE_PORT=8080 \
    LOTSE_DATA_DIR=/data

# A fixed uid/gid so that volume ownership stays the same across rebuilds.
RUN groupadd --system --gid 10001 lotse \
 && useradd --system --uid 10001 --gid lotse --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin lotse \
 && install -d -o lotse -g lotse -m 0700 /data

# The same path as in the build stage, so the virtualenv's scripts keep working.
COPY --from=build /opt/lotse /opt/lotse

USER 10001:10001
WORKDIR /data
# Development secrets (never in production) and a SQLite file (only without DATABASE_URL).
VOLUME ["/data"]
EXPOSE 8080

# slim has no curl; the standard library is enough. urlopen raises (exit 1) on any non-2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LOTSE_PORT', '8080'), timeout=4)"]

CMD ["lotse", "serve"]
