# Shipthread's image: `shipthread serve` as a non-root user, nothing in it but the bot and its
# dependencies. Config and playbooks are mounted (deploy/kubernetes mounts them from ConfigMaps),
# secrets come from the environment at run time: no layer holds either.
#
#   docker build -t shipthread .
#   docker run -p 3000:3000 -v "$PWD/config/shipthread.yaml:/etc/shipthread/shipthread.yaml:ro" \
#     -v "$PWD/playbooks:/etc/shipthread/playbooks:ro" -e SLACK_BOT_TOKEN -e SLACK_SIGNING_SECRET \
#     -e JENKINS_USER -e JENKINS_TOKEN shipthread serve --upgrade
#
# Checked by hadolint in CI (.ci/run, tests/test_dockerfile.py).

# --- build: the bot and its dependencies in a virtualenv, built from the source tree -----------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/shipthread
COPY pyproject.toml README.md LICENSE ./
COPY bot ./bot
# A local path (quoted: the brackets are not a glob), so hadolint's pin rule (DL3013) does not apply;
# the dependency ranges are pyproject's. pip compiles the bytecode here: the root filesystem of the
# running container is read-only.
RUN /opt/shipthread/bin/pip install './[postgres]'

# --- run: the same Python, the virtualenv, a user without a shell or a home ----------------------------
FROM python:3.11-slim-bookworm
# A numeric user, so that Kubernetes can check runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 10001 shipthread \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin shipthread \
    && mkdir -p /data /etc/shipthread/playbooks \
    && chown 10001:10001 /data
COPY --from=build /opt/shipthread /opt/shipthread
# The default database URL is relative (./shipthread.db): /data is the working directory, so it lands
# on the volume, and a config file's own database_url still applies.
WORKDIR /data
ENV PATH=/opt/shipthread/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SHIPTHREAD_CONFIG=/etc/shipthread/shipthread.yaml \
    SHIPTHREAD_PLAYBOOKS=/etc/shipthread/playbooks
USER 10001:10001
VOLUME ["/data"]
EXPOSE 3000
# No curl in a slim image: the image's own Python asks /healthz, and gives up after 3 s.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=3)"]
ENTRYPOINT ["shipthread"]
CMD ["serve"]
