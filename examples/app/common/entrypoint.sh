#!/bin/sh
# Starts one service of the example application: busybox nc listens on PORT and runs handler.sh for every
# connection (one process per connection, so requests are served concurrently). This shell stays PID 1 so
# that `docker stop` (SIGTERM) ends the service at once.
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

echo "$SERVICE_NAME $SVC_VERSION (release ${RELEASE_ID:-unknown}, broken=$BROKEN) listening on :$PORT"
# The handlers log to fd 3, which stays the container's stdout while their own stdout is the connection.
exec 3>&1
nc -ll -p "$PORT" -e /bin/sh "$APP_HOME/common/handler.sh" &
server=$!
trap 'kill "$server" 2>/dev/null; exit 0' TERM INT
set +e
wait "$server"
status=$?
echo "$SERVICE_NAME: the server stopped (status $status)" >&2
exit 1
