# Image of the 2X post-call CRM connector: `connector serve` with the config in /config and SQLite in /data.
FROM python:3.11-slim
RUN useradd --create-home connector
WORKDIR /app
COPY pyproject.toml README.md ./
COPY connector ./connector
RUN pip install --no-cache-dir '.[postgres,redis]'
USER connector
VOLUME ["/config", "/data"]
WORKDIR /data
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["connector"]
CMD ["serve", "--config", "/config/connector.yaml"]
