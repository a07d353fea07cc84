# The midika image: the `midika` CLI, `python -m ingest` and the shipped trial files, for the
# production stack in docker-compose.yml. Build context: the repository root (see .dockerignore).
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/midika
WORKDIR /src
COPY pyproject.toml README.md ./
COPY midika ./midika
COPY ingest ./ingest
COPY api ./api
COPY devices ./devices
COPY dashboards ./dashboards
COPY simulators ./simulators
# A regular install without the dev extra; only the virtualenv reaches the runtime stage.
RUN /opt/midika/bin/pip install .

FROM python:3.11-slim-bookworm
ENV PATH=/opt/midika/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MIDIKA_DATA_DIR=/var/lib/midika \
    MIDIKA_TRIALS_DIR=/etc/midika/trials
# The folders named volumes are mounted on must exist and belong to midika in the image: Docker
# gives an empty named volume the owner of the folder it is first mounted on.
RUN useradd --system --user-group --uid 10001 --home-dir /var/lib/midika --no-create-home midika \
    && install -d -o midika -g midika /var/lib/midika /var/lib/midika-mosquitto
COPY --from=build /opt/midika /opt/midika
COPY trials /etc/midika/trials
USER midika
WORKDIR /var/lib/midika
ENTRYPOINT ["midika"]
CMD ["--help"]
