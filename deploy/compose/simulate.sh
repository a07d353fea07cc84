#!/usr/bin/env bash
# The `simulator` service of docker-compose.yml (profile `demo`): simulated devices of the trials in
# $SIMULATE_TRIALS (default: every trial), each logged in to Mosquitto with its own id and secret,
# like real firmware. On every start it issues fresh secrets for those devices (demo_secrets.py),
# re-exports Mosquitto's password file and waits for the broker to reload it (deploy/compose/mosquitto.sh
# looks every 2 s). The plaintext secrets live only in this container's /tmp, a tmpfs.
set -euo pipefail

secrets=$(mktemp)
# SIMULATE_TRIALS is a space-separated list: split it into arguments on purpose.
# shellcheck disable=SC2086
trials=$(python /opt/midika-demo/demo_secrets.py "$secrets" ${SIMULATE_TRIALS:-})
midika devices export-mosquitto --out "$AUTH_DIR"
sleep 5

pids=()
for trial in $trials; do
    midika simulate --trial "$trial" --broker "$MIDIKA_BROKER_URL" --credentials "$secrets" \
        --seed "${SIMULATE_SEED:-1}" --speed "${SIMULATE_SPEED:-1}" --quiet &
    pids+=("$!")
done
# One TERM each: a second one makes `midika simulate` abort without saying goodbye.
stopping=false
stop() {
    if ! $stopping; then
        stopping=true
        kill -TERM "${pids[@]}" 2>/dev/null || true
    fi
}
signalled=false
trap 'signalled=true; stop' TERM INT
# The first simulator to end (a refused login, say) ends them all: the container's exit status and
# restart policy then speak for the whole demo. A stop asked for is a success.
status=0
wait -n || status=$?
stop
wait || true
if $signalled; then
    exit 0
fi
exit "$status"
