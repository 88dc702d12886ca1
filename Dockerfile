# gradecast container image.
#
# Builds unchanged from any Debian-based Python >= 3.11 image:
#   docker build -t gradecast .                                   (python:3.12-slim)
#   podman build --build-arg BASE_IMAGE=localhost/debian-python:bookworm -t gradecast .
# The second form uses the local base made by scripts/make-base-image.sh
# (Debian 12's python3 3.11), for machines that cannot reach a registry.
#
# Behind a TLS-intercepting proxy, give pip the proxy's CA for the build only,
# without baking it into the image:
#   podman build -v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro \
#                --build-arg PIP_CERT=/run/host-ca.crt ...
# Build with `--format docker` under podman/buildah to keep the HEALTHCHECK.
ARG BASE_IMAGE=python:3.12-slim

# ---------------------------------------------------------------------------
# Stage 1: turn pyproject.toml into plain requirements lists. Only the
# resulting files are copied into the later stages, so the dependency layers
# below are rebuilt only when a dependency list itself changes, not when some
# other part of pyproject.toml (version, tool settings) does.
FROM ${BASE_IMAGE} AS requirements
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); open('requirements.txt', 'w').write(''.join(d + '\n' for d in p['project'].get('dependencies', []))); open('build-requirements.txt', 'w').write(''.join(d + '\n' for d in p.get('build-system', {}).get('requires', [])))" \
 && cat requirements.txt build-requirements.txt

# ---------------------------------------------------------------------------
# Stage 2: build the wheel. It carries the migrations (alembic/, reached by the
# package as app/migrations), so the installed copy needs no source tree, and its one
# compiled module (app/tables/_pupiljson.c): a C compiler and the Python headers are
# installed here, in this stage only (python:3.x-slim has the headers; Debian's python3
# takes python3-dev), never in the runtime image.
FROM ${BASE_IMAGE} AS wheel
ARG PIP_CERT=
ARG PIP_INDEX_URL=
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN headers=$(python3 -c "import os, sysconfig; print('' if os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')) else 'python3-dev')") \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev $headers \
 && rm -rf /var/lib/apt/lists/*
COPY --from=requirements /src/build-requirements.txt /tmp/
RUN if [ -n "${PIP_CERT:-}" ]; then export PIP_CERT; else unset PIP_CERT; fi \
 && if [ -n "${PIP_INDEX_URL:-}" ]; then export PIP_INDEX_URL; else unset PIP_INDEX_URL; fi \
 && python3 -m venv /opt/build \
 && /opt/build/bin/pip install --upgrade pip \
 && /opt/build/bin/pip install -r /tmp/build-requirements.txt
WORKDIR /src
COPY . /src
# No network here: the build requirements are already in /opt/build.
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /dist /src

# ---------------------------------------------------------------------------
# Stage 3: the runtime image.
FROM ${BASE_IMAGE}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="gradecast" \
      org.opencontainers.image.description="REST service that learns a linear model of an end-of-year exam grade from past cohorts and serves predictions." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Unprivileged user that runs the service; /data holds the SQLite database.
RUN groupadd --gid 10001 gradecast \
 && useradd --uid 10001 --gid gradecast --home-dir /home/gradecast --create-home \
        --no-log-init --shell /usr/sbin/nologin gradecast \
 && mkdir -p /data \
 && chown gradecast:gradecast /data

# A venv works on both bases (Debian's own python3 is "externally managed").
RUN python3 -m venv /opt/venv

# Dependencies first, so code changes do not reinstall them.
# PIP_CERT (optional) names a CA bundle mounted only for the build.
ARG PIP_CERT=
ARG PIP_INDEX_URL=
COPY --from=requirements /src/requirements.txt /tmp/
RUN if [ -n "${PIP_CERT:-}" ]; then export PIP_CERT; else unset PIP_CERT; fi \
 && if [ -n "${PIP_INDEX_URL:-}" ]; then export PIP_INDEX_URL; else unset PIP_INDEX_URL; fi \
 && pip install --upgrade pip \
 && pip install -r /tmp/requirements.txt \
 && rm -f /tmp/requirements.txt

# The application: a plain install of the wheel, no source tree in the image.
# No network is needed here (no deps). The check fails the build if the
# migrations did not make it into the package.
COPY --from=wheel /dist/ /tmp/dist/
RUN pip install --no-deps /tmp/dist/gradecast-*.whl \
 && rm -rf /tmp/dist \
 && command -v gradecast >/dev/null \
 && python -c "from app.db.migrations import head_revision; assert head_revision()"
WORKDIR /home/gradecast

ENV GRADECAST_DATA_DIR=/data \
    GRADECAST_DATABASE_URL=sqlite:////data/gradecast.db

VOLUME ["/data"]
EXPOSE 8000
USER gradecast:gradecast

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

# Apply migrations, then serve; exec so that the server gets the signals.
CMD ["sh", "-c", "gradecast migrate && exec gradecast serve --host 0.0.0.0 --port 8000"]
