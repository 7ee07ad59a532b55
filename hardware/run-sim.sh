#!/usr/bin/env bash
# Quick start: run dcgate on simulated hardware, on any Linux machine, no Raspberry Pi needed.
#
#   bash hardware/run-sim.sh
#
# Creates .venv/ (first run only), makes sure an MQTT broker listens on 127.0.0.1:1883 (starting
# a private mosquitto for this session if none does, and stopping it again at the end), then runs
# `dcgate run --config hardware/config/sim.toml` in the foreground. Stop with Ctrl-C.
set -euo pipefail

# shellcheck source=hardware/setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

CONFIG="$DCGATE_ROOT/hardware/config/sim.toml"
SIM_DIR="$DCGATE_ROOT/.dcgate-sim"          # the sim config's data_dir
BROKER_HOST=127.0.0.1
BROKER_PORT=1883

# the sim door has a (simulated) camera: face recognition runs for real on what it is shown
ensure_venv face

# biometric templates are encrypted at rest; the sim keeps its key beside its data
mkdir -p "$SIM_DIR"
chmod 700 "$SIM_DIR"
if [[ ! -e "$SIM_DIR/biometric.key" ]]; then
    "$DCGATE_VENV/bin/dcgate" key generate "$SIM_DIR/biometric.key" >&2
fi

port_open() {
    (exec 3<>"/dev/tcp/$BROKER_HOST/$BROKER_PORT") 2>/dev/null
}

mosquitto_pid=""
gateway_pid=""

stop_broker() {
    if [[ -n "$mosquitto_pid" ]] && kill -0 "$mosquitto_pid" 2>/dev/null; then
        kill -TERM "$mosquitto_pid" 2>/dev/null || true
        wait "$mosquitto_pid" 2>/dev/null || true
        echo "run-sim: stopped the session's mosquitto (pid $mosquitto_pid)" >&2
    fi
    mosquitto_pid=""
}
trap stop_broker EXIT
trap 'exit 130' INT   # before the gateway runs: leave, and let the EXIT trap stop the broker
trap 'exit 143' TERM

if port_open; then
    echo "run-sim: using the MQTT broker already listening on $BROKER_HOST:$BROKER_PORT" >&2
else
    ensure_apt_packages mosquitto mosquitto-clients
    broker="$(PATH="$PATH:/usr/sbin:/sbin:/usr/local/sbin" command -v mosquitto)" \
        || dcgate_die "mosquitto not found. Fix: install mosquitto, or start any MQTT broker on $BROKER_HOST:$BROKER_PORT"
    mkdir -p "$SIM_DIR"
    chmod 700 "$SIM_DIR"
    {
        echo "# written by hardware/run-sim.sh for this session only"
        echo "listener $BROKER_PORT $BROKER_HOST"
        echo "allow_anonymous true"
        echo "persistence false"
        echo "log_dest file $SIM_DIR/mosquitto.log"
        # as root mosquitto would switch to the 'mosquitto' user, who cannot write into the 0700 data dir
        if [[ "$(id -u)" -eq 0 ]]; then echo "user root"; fi
    } >"$SIM_DIR/mosquitto.conf"
    # its own session, so Ctrl-C in the terminal does not stop the broker before the gateway has
    # flushed its last events and said "offline"; the EXIT trap stops it afterwards
    launcher=()
    if command -v setsid >/dev/null 2>&1; then launcher=(setsid); fi
    "${launcher[@]}" "$broker" -c "$SIM_DIR/mosquitto.conf" </dev/null >/dev/null 2>>"$SIM_DIR/mosquitto.log" &
    mosquitto_pid=$!
    for _ in $(seq 1 100); do
        port_open && break
        kill -0 "$mosquitto_pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! port_open; then
        tail -n 20 "$SIM_DIR/mosquitto.log" >&2 || true
        dcgate_die "mosquitto did not start on $BROKER_HOST:$BROKER_PORT (log: $SIM_DIR/mosquitto.log)"
    fi
    echo "run-sim: started mosquitto on $BROKER_HOST:$BROKER_PORT for this session (pid $mosquitto_pid, log $SIM_DIR/mosquitto.log)" >&2
fi

cat >&2 <<EOF
run-sim: watch what is forwarded:  mosquitto_sub -h $BROKER_HOST -t 'dcgate/#' -v
run-sim: poke the simulator:       .venv/bin/dcgate sim set probe rack1 temperature=27.5 --config hardware/config/sim.toml
run-sim: more:                     .venv/bin/dcgate status --config hardware/config/sim.toml
run-sim: the web console:         http://127.0.0.1:8080  (no default account; make the first admin:)
                                   .venv/bin/dcgate user add admin --role admin --password-file - --config hardware/config/sim.toml
run-sim: the door:                 .venv/bin/dcgate person add --name "Budi" --nip 199001012015011001 --role staff --config hardware/config/sim.toml
                                   .venv/bin/dcgate enroll face ID --image PHOTO.jpg --config hardware/config/sim.toml
                                   .venv/bin/dcgate door present main --face PHOTO2.jpg --config hardware/config/sim.toml
EOF

# The gateway runs as a child (not exec) so the broker is stopped when it ends. Ctrl-C or SIGTERM
# to this script is passed on as SIGTERM: the gateway then records gateway.stopped and flushes.
"$DCGATE_VENV/bin/dcgate" run --config "$CONFIG" &
gateway_pid=$!
trap 'kill -TERM "$gateway_pid" 2>/dev/null || true' INT TERM
set +e
while :; do
    wait "$gateway_pid"
    rc=$?
    kill -0 "$gateway_pid" 2>/dev/null || break  # ended; otherwise wait was interrupted by a signal
done
# a signal may have interrupted wait just before the gateway ended: ask once more for its real status
wait "$gateway_pid" 2>/dev/null
final=$?
if (( final != 127 )); then rc=$final; fi
exit "$rc"
