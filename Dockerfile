# calcinosis-cds production image.
#
#   docker build -t calcinosis-cds .
#   docker run --rm -p 127.0.0.1:8080:8080 -v "$PWD/issuers.json:/etc/calcinosis-cds/issuers.json:ro" \
#     -v cds-data:/var/lib/calcinosis-cds -e CDS_HASH_SECRET="$(cat hash-secret)" \
#     -e CDS_ISSUERS=/etc/calcinosis-cds/issuers.json -e CDS_PUBLIC_URL=https://cds.example.org calcinosis-cds
#
# Two stages: "build" makes the wheel and installs it into /opt/venv; the runtime stage gets only that venv, so no
# compiler, pip, source tree, tests or build-time CA bundle end up in the image. See docs/docker.md.
#
# A plain `docker build` (the classic builder or BuildKit; no BuildKit-only syntax), so that docker-compose v1 and
# Docker without buildx build it too. Behind a TLS-inspecting proxy, put the proxy's CA bundle at
# docker/build-ca/ca-bundle.pem (git ignores it): pip in the build stage trusts it, and the runtime stage, which is
# all that ships, never contains it (docker/build-ca/README.md).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DEFAULT_TIMEOUT=60 \
    PIP_RETRIES=5 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first: this layer is reused as long as pyproject.toml does not change.
# The optional CA bundle: the directory always exists (its README), the bundle only when someone put it there.
COPY docker/build-ca/ /tmp/build-ca/
COPY pyproject.toml ./
RUN set -eu; \
    if [ -s /tmp/build-ca/ca-bundle.pem ]; then export PIP_CERT=/tmp/build-ca/ca-bundle.pem; fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > /tmp/requirements.txt; \
    /opt/venv/bin/pip install --requirement /tmp/requirements.txt
COPY README.* ./
COPY cds_service ./cds_service
COPY cards ./cards
RUN set -eu; \
    if [ -s /tmp/build-ca/ca-bundle.pem ]; then export PIP_CERT=/tmp/build-ca/ca-bundle.pem; fi; \
    /opt/venv/bin/pip wheel --no-deps --wheel-dir /tmp/dist .; \
    /opt/venv/bin/pip install --no-deps /tmp/dist/calcinosis_cds-*.whl; \
    /opt/venv/bin/pip uninstall --yes pip setuptools; \
    /opt/venv/bin/python -c 'import cds_service, cards; assert all(p.is_file() for p in cards.terminology_files()); cards.knowledge()'

FROM ${PYTHON_IMAGE} AS runtime
# A fixed non-root uid/gid, so that a mounted issuers file can be made readable to it; the home directory is
# writable because gunicorn keeps its control socket under $HOME/.gunicorn.
RUN groupadd --system --gid 10001 cds \
 && useradd --system --uid 10001 --gid cds --home-dir /home/cds --create-home --shell /usr/sbin/nologin cds \
 && mkdir -p /etc/calcinosis-cds \
 && install -d -o cds -g cds -m 0700 /var/lib/calcinosis-cds
COPY --from=build /opt/venv /opt/venv
COPY docker/gunicorn.conf.py /etc/calcinosis-cds/gunicorn.conf.py
COPY docker/healthcheck.py /etc/calcinosis-cds/healthcheck.py
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/cds \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8080 \
    CDS_AUTH=required \
    CDS_FHIR_ALLOW_HTTP=false \
    CDS_LOG_FORMAT=json \
    CDS_LOG_LEVEL=INFO \
    CDS_DATA_DIR=/var/lib/calcinosis-cds \
    GUNICORN_WORKERS=2 \
    GUNICORN_THREADS=4 \
    GUNICORN_TIMEOUT=30 \
    GUNICORN_GRACEFUL_TIMEOUT=8 \
    GUNICORN_KEEPALIVE=5
# The SQLite database (the default CDS_DATABASE_URL) lives here: a volume, so that issued cards, feedback and
# dismissals (A22) outlive the container. With PostgreSQL (CDS_DATABASE_URL) it stays empty.
VOLUME ["/var/lib/calcinosis-cds"]
USER cds:cds
WORKDIR /home/cds
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "/etc/calcinosis-cds/healthcheck.py"]
# gunicorn stops gracefully on SIGTERM: it stops accepting, lets workers finish within GUNICORN_GRACEFUL_TIMEOUT and
# exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["gunicorn", "--config", "/etc/calcinosis-cds/gunicorn.conf.py"]
CMD ["cds_service:create_app()"]
