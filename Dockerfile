# The game API. Multi-stage: the build stage makes a virtualenv with the dependencies, the final
# stage is the same base image with that virtualenv and the source, run as a non-root user.
#
# PYTHON_IMAGE is the base of both stages (they must match: the virtualenv's python is a link to
# the base's interpreter). Public default: python:3.11-slim (python at /usr/local/bin); it also
# builds from a Debian image with python3 and python3-venv (python at /usr/bin), e.g. the one
# .ci/images.sh makes where no registry is reachable.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
# Only the dependency list from pyproject.toml, so this layer is rebuilt when dependencies
# change, not on every code change. The service runs from its source directory (app/ next to
# lua/, as ./serve runs it), so the project itself is not installed.
COPY pyproject.toml ./
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" >requirements.txt \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
# What is copied is listed in .dockerignore (an allowlist: the service's code and data only).
COPY . .
# Bytecode compiled now: the non-root user cannot write it at run time.
RUN python3 -m compileall -q app \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin game
USER 10001

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
# As ./serve starts it; the app logs one line per request itself. Worker processes:
# WEB_CONCURRENCY (uvicorn reads it; default 1). Client addresses from X-Forwarded-For are
# trusted from FORWARDED_ALLOW_IPS (uvicorn's default: 127.0.0.1 only). On SIGTERM (docker
# stop): /health answers 503 for 1.5 s (the balancer takes it out), requests in flight get at
# most 4 s, the write-back of games held in memory at most 3 s and the last Redis replies 1 s:
# at most 9.5 s, within Docker's 10 s stop timeout, so no SIGKILL cuts the write-back short.
CMD ["uvicorn", "--factory", "app.main:create_app", "--host", "0.0.0.0", "--port", "8000", "--http", "app.http_limits:BoundedHttpToolsProtocol", "--no-access-log", "--timeout-graceful-shutdown", "4"]
