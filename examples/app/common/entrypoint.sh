#!/bin/sh
# Starts one service of the example application: busybox nc listens on PORT and runs handler.sh for every
# connection (one process per connection, so requests are served concurrently). This shell stays PID 1 so
# that `docker stop` (SIGTERM) ends the service at once.
set -eu

APP_HOME=${APP_HOME:-/app}
# shellcheck source=/dev/null
. "$APP_HOME/service/service.conf"
SERVICE_NAME=${SERVICE_NAME:-$SVC_NAME}
PORT=${PORT:-$SVC_PORT}
BROKEN=${DEVTOOLS_BROKEN:-none}
export APP_HOME SERVICE_NAME PORT

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
