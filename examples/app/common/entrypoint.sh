#!/bin/sh
# Starts one service of the example application: busybox nc listens on PORT and runs handler.sh for every
# connection (one process per connection, so requests are served concurrently). This shell stays PID 1 so
# that `docker stop` (SIGTERM) ends the service at once. At start it writes what the handlers read: the start
# time (process_start_time_seconds) and CLOCK_BASE_CS, with which they tell the time from /proc/uptime alone.
# With the argument `migrate` it is the service's one-shot migration instead (the host agent runs it with
# `docker compose run` before the service's new image replaces the old one): it creates DATA_DIR, writes the
# image's schema version (SVC_VERSION) to DATA_DIR/schema-version, says what it did and exits.
set -eu

APP_HOME=${APP_HOME:-/app}
# shellcheck source=/dev/null
. "$APP_HOME/service/service.conf"
SERVICE_NAME=${SERVICE_NAME:-$SVC_NAME}
PORT=${PORT:-$SVC_PORT}
BROKEN=${DEVTOOLS_BROKEN:-none}
LISTEN_BACKLOG=64
export APP_HOME SERVICE_NAME PORT

if [ "${1:-}" = migrate ]; then
	if [ "$BROKEN" = migrate ]; then
		echo "$SERVICE_NAME: deliberately broken image (BROKEN=migrate): the migration fails, nothing written" >&2
		exit 1
	fi
	if [ -z "${DATA_DIR:-}" ]; then
		echo "$SERVICE_NAME: migrate: DATA_DIR is not set (the directory the service keeps its data in)" >&2
		exit 2
	fi
	mkdir -p "$DATA_DIR"
	was=none
	[ -f "$DATA_DIR/schema-version" ] && was=$(cat "$DATA_DIR/schema-version")
	printf '%s\n' "$SVC_VERSION" >"$DATA_DIR/schema-version.tmp"
	mv -f "$DATA_DIR/schema-version.tmp" "$DATA_DIR/schema-version"
	echo "$SERVICE_NAME: migrated $DATA_DIR to schema $SVC_VERSION (was $was)"
	exit 0
elif [ $# -gt 0 ]; then
	echo "$SERVICE_NAME: unknown argument '$1' (the only one is: migrate)" >&2
	exit 2
fi

if [ "$BROKEN" = crash ]; then
	echo "$SERVICE_NAME: deliberately broken image (BROKEN=crash): exiting" >&2
	exit 1
fi
if [ "$BROKEN" = leak ]; then
	echo "$SERVICE_NAME: deliberately broken image (BROKEN=leak): printing its environment, then exiting" >&2
	env >&2
	exit 1
fi

export METRICS_DIR="${METRICS_DIR:-/tmp/metrics}"
mkdir -p "$METRICS_DIR"
if [ -n "${DATA_DIR:-}" ]; then
	mkdir -p "$DATA_DIR"
fi

# The wall clock now, to the microsecond: adjtimex reads it without privileges (its tv_usec holds nanoseconds
# when the kernel's status has STA_NANO, 8192); where that is refused, date gives the second.
started=$(adjtimex 2>/dev/null | awk '$1 == "status:" { nano = int($2 / 8192) % 2 }
	$1 == "time.tv_sec:" { s = $2 } $1 == "time.tv_usec:" { u = $2 }
	END { if (s == "") exit 1; printf "%d.%06d\n", s, nano ? int(u / 1000) : u }') ||
	started="$(date +%s).000000"
read -r uptime _ </proc/uptime
fraction=${started#*.}
# Centiseconds: the wall clock minus the uptime (1 prefixed and 100 taken away: a leading 0 would read as octal).
export CLOCK_BASE_CS=$((${started%.*} * 100 + 1${fraction%????} - 100 - ${uptime%.*} * 100 - 1${uptime#*.} + 100))
printf '%s\n' "$started" >"$METRICS_DIR/start-time"

echo "$SERVICE_NAME $SVC_VERSION (release ${RELEASE_ID:-unknown}, broken=$BROKEN) listening on :$PORT"
# The handlers log to fd 3, which stays the container's stdout while their own stdout is the connection.
exec 3>&1
# busybox nc's listen backlog is the number of -l flags (-ll: 2): connections arriving while it starts a
# handler wait in a queue this long instead of being dropped (a client retries a dropped one only after 1 s).
listen=-l
while [ ${#listen} -le "$LISTEN_BACKLOG" ]; do
	listen=${listen}l
done
nc "$listen" -p "$PORT" -e /bin/sh "$APP_HOME/common/handler.sh" &
server=$!
trap 'kill "$server" 2>/dev/null; exit 0' TERM INT
set +e
wait "$server"
status=$?
echo "$SERVICE_NAME: the server stopped (status $status)" >&2
exit 1
