# plnbot: the real bot (`plnbot run`) with its SQLite database on a volume.
# Configuration comes from the environment (see config.example.env), e.g.
#   docker run --env-file .env -v plnbot-data:/data plnbot
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg \
    PLNBOT_DATA_DIR=/data \
    DATABASE_URL=sqlite:////data/plnbot.sqlite3

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
RUN pip install --no-cache-dir . && useradd --create-home plnbot && mkdir -p /data \
    && chown plnbot /data

USER plnbot
VOLUME ["/data"]
ENTRYPOINT ["plnbot"]
CMD ["run"]
