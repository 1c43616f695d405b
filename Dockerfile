# A first working image of Shipthread: the bot, its playbooks and example config.
# A later issue hardens it (pinned digests, distroless runtime, SBOM).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY bot ./bot
RUN pip install --no-cache-dir --prefix=/install '.[postgres]'

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 shipthread
COPY --from=build /install /usr/local
COPY playbooks /app/playbooks
COPY config /app/config
WORKDIR /app
ENV SHIPTHREAD_PLAYBOOKS=/app/playbooks \
    SHIPTHREAD_DATABASE_URL=sqlite+aiosqlite:////data/shipthread.db \
    PYTHONUNBUFFERED=1
RUN mkdir /data && chown shipthread /data
USER shipthread
VOLUME ["/data"]
EXPOSE 3000
ENTRYPOINT ["shipthread"]
CMD ["--help"]
