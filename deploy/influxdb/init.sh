#!/bin/sh
# The `influxdb-init` service of docker-compose.yml: makes the stack's InfluxDB 2.x ready for midika.
# Runs in the influxdb image (it has the influx CLI) on every `docker compose up`, so it is idempotent:
#   1. the bucket midika writes to exists (setup mode creates one on the very first start only, so a
#      bucket renamed later in .env is created here);
#   2. a DBRP mapping routes InfluxQL on the v1 /query endpoint to that bucket: midika reads with
#      InfluxQL from database $DATABASE, retention policy $RP, and so does Grafana.
# The influx CLI takes INFLUX_HOST, INFLUX_TOKEN and INFLUX_ORG from the environment.
set -eu

: "${INFLUX_HOST:?}" "${INFLUX_TOKEN:?}" "${INFLUX_ORG:?}" "${BUCKET:?}" "${DATABASE:?}" "${RP:?}"

# Match names ourselves: asked for a name it lacks, InfluxDB 2.x still lists its system buckets.
bucket_id=$(influx bucket list --hide-headers | awk -v name="$BUCKET" '$2 == name { print $1; exit }')
if [ -z "$bucket_id" ]; then
    created=$(influx bucket create --name "$BUCKET" --hide-headers)
    bucket_id=$(printf '%s\n' "$created" | awk -v name="$BUCKET" '$2 == name { print $1; exit }')
    [ -n "$bucket_id" ] || { echo "influxdb-init: could not create bucket $BUCKET" >&2; exit 1; }
    echo "influxdb-init: created bucket $BUCKET ($bucket_id) in org $INFLUX_ORG"
fi

# `dbrp list` prints the real mappings, then a heading and the virtual ones 2.2+ derives from bucket
# names; only a real mapping counts, since the database may be named differently from the bucket.
mapped_to=$(influx v1 dbrp list --db "$DATABASE" --hide-headers | sed '/^VIRTUAL DBRP/,$d' \
    | awk -v db="$DATABASE" -v rp="$RP" '$2 == db && $4 == rp { print $3; exit }')
if [ -z "$mapped_to" ]; then
    influx v1 dbrp create --bucket-id "$bucket_id" --db "$DATABASE" --rp "$RP" --default >/dev/null
    echo "influxdb-init: InfluxQL database $DATABASE, retention policy $RP now reads bucket $BUCKET"
elif [ "$mapped_to" = "$bucket_id" ]; then
    echo "influxdb-init: InfluxQL database $DATABASE, retention policy $RP reads bucket $BUCKET"
else
    echo "influxdb-init: InfluxQL database $DATABASE, retention policy $RP already reads bucket" \
        "$mapped_to, not $BUCKET ($bucket_id); remove that mapping (influx v1 dbrp delete) or change" \
        "MIDIKA_INFLUX_DATABASE" >&2
    exit 1
fi
