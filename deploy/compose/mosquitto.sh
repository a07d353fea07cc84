#!/bin/sh
# The `mosquitto` service's command (docker-compose.yml), run by the eclipse-mosquitto image's
# entrypoint as root. Mosquitto reads its password file and ACL as /mosquitto/config/passwd and
# /mosquitto/config/acl (deploy/mosquitto/mosquitto.conf); `midika devices export-mosquitto` writes
# them into the shared volume at $AUTH_DIR. This script copies them in place and, whenever a new export
# lands there, copies them again and makes mosquitto reload them (SIGHUP): issuing or revoking a
# device's credentials then needs no broker restart.
#
# Copied, not read in place: mosquitto wants those files owned by its own user and closed to others,
# while the volume belongs to midika's user, who writes it from the other containers.
set -eu

src=${AUTH_DIR:-/midika-auth}
dst=/mosquitto/config
poll_s=2

for name in passwd acl; do
    if [ ! -f "$src/$name" ]; then
        echo "mosquitto: no $src/$name; the init service writes it (docker compose run --rm init)" >&2
        exit 1
    fi
done

fingerprint() {
    cat "$src/passwd" "$src/acl" | md5sum
}

install_auth() {
    # `&&`, not `set -e`: the loop below calls this in an `if`, where `set -e` does not apply.
    for name in passwd acl; do
        cp "$src/$name" "$dst/.$name.new" \
            && chown mosquitto:mosquitto "$dst/.$name.new" \
            && chmod 0600 "$dst/.$name.new" \
            && mv "$dst/.$name.new" "$dst/$name" \
            || return 1
    done
}

seen=$(fingerprint)
install_auth
/usr/sbin/mosquitto -c "$dst/mosquitto.conf" &
broker=$!
trap 'kill -TERM "$broker" 2>/dev/null || true' TERM INT

while kill -0 "$broker" 2>/dev/null; do
    # A background sleep, so that `docker compose stop` is handled at once, not after the sleep.
    sleep "$poll_s" &
    wait $! || true
    now=$(fingerprint 2>/dev/null) || continue
    if [ "$now" != "$seen" ]; then
        if install_auth && kill -HUP "$broker" 2>/dev/null; then
            seen=$now
            echo "mosquitto: reloaded the password file and ACL from $src"
        else
            echo "mosquitto: could not install the new password file and ACL; trying again" >&2
        fi
    fi
done
wait "$broker"
