#!/bin/sh
# Answers one HTTP/1.1 request on stdin/stdout (the connection); nc starts one of these per connection.
# Every answer carries `Connection: close`, so a client never waits on a kept-alive socket.
# This file reads the request and answers GET /health itself, before the shell has parsed any other route:
# probes and load balancers ask it most, and it starts no process. routes.sh answers every other route:
# GET /metrics, GET / (service info); POST /e2e (agents, which first ask STATE_URL); POST /mcp and GET/POST
# /state (gateway: /state is forwarded to STATE_URL); GET and POST on SVC_STORE (services that keep data
# under DATA_DIR).
# busybox ash has read -t/-n/-d, ${var//old/new} and $'\r', which POSIX sh lacks:
# shellcheck disable=SC3003,SC3045,SC3060
set -u
# When the handler started (for http_request_duration_seconds): /proc/uptime, to the centisecond.
read -r started _ </proc/uptime
# ${#body} counts bytes (Content-Length) only in the C locale; busybox ash re-reads it when this is exported.
export LC_ALL=C

APP_HOME=${APP_HOME:-/app}
# shellcheck source=/dev/null
. "$APP_HOME/service/service.conf"
SERVICE_NAME=${SERVICE_NAME:-$SVC_NAME}
RELEASE_ID=${RELEASE_ID:-unknown}
BROKEN=${DEVTOOLS_BROKEN:-none}
METRICS_DIR=${METRICS_DIR:-/tmp/metrics}
MAX_BODY=65536
CR=$'\r'
method=-
path=-

# Sets CS to the centiseconds of /proc/uptime.
uptime_cs() {
	read -r up _ </proc/uptime
	CS=$((${up%.*} * 100 + 1${up#*.} - 100)) # 1 prefixed, 100 taken away: a leading 0 would read as octal
}

# One line per request on the container's stdout (fd 3, kept open by the entrypoint), and no process for it:
# the time (UTC, to the second) comes from /proc/uptime and the entrypoint's CLOCK_BASE_CS (date without it).
# Days to a civil date: H. Hinnant's civil_from_days (proleptic Gregorian, in 400-year eras).
log_request() {
	if [ -n "${CLOCK_BASE_CS:-}" ]; then
		uptime_cs
		s=$(((CLOCK_BASE_CS + CS) / 100))
	else
		s=$(date +%s)
	fi
	d=$((s / 86400 + 719468)) t=$((s % 86400))
	era=$((d / 146097))
	doe=$((d - era * 146097))
	yoe=$(((doe - doe / 1460 + doe / 36524 - doe / 146096) / 365))
	doy=$((doe - (365 * yoe + yoe / 4 - yoe / 100)))
	mp=$(((5 * doy + 2) / 153))
	month=$((mp < 10 ? mp + 3 : mp - 9))
	{ printf '%04d-%02d-%02dT%02d:%02d:%02dZ %s %s %s %s %s\n' $((yoe + era * 400 + (month <= 2))) "$month" \
		$((doy - (153 * mp + 2) / 5 + 1)) $((t / 3600)) $((t % 3600 / 60)) $((t % 60)) \
		"$SERVICE_NAME" "$method" "$path" "$1" "$2" >&3; } 2>/dev/null
}

# Sets JSON to $1 escaped for use inside a JSON string (backslashes and double quotes). No subshell: a
# request costs one process less for each value escaped (this server forks a shell per connection).
json_esc() {
	JSON=${1//\\/\\\\}
	JSON=${JSON//\"/\\\"}
}
json_esc "$RELEASE_ID"
RELEASE_JSON=$JSON

# respond CODE REASON CONTENT-TYPE BODY [EXTRA-HEADER]
respond() {
	[ -d "$METRICS_DIR" ] || mkdir -p "$METRICS_DIR"
	printf x >>"$METRICS_DIR/$1"  # one byte per answer: the file's size is the count
	length=${#4}  # bytes, not characters: LC_ALL=C above
	printf 'HTTP/1.1 %s %s\r\n' "$1" "$2"
	[ -n "$3" ] && printf 'Content-Type: %s\r\n' "$3"
	printf 'Content-Length: %s\r\nConnection: close\r\n' "$length"
	[ -n "${5:-}" ] && printf '%s\r\n' "$5"
	printf '\r\n'
	[ "$method" = HEAD ] || printf '%s' "$4"
	if [ "$method $path" = "POST /mcp" ]; then
		# how long this answer took, one line of centiseconds (metrics.sh makes the histogram of them)
		uptime_cs
		printf '%s\n' $((CS - 1${started#*.} + 100 - ${started%.*} * 100)) >>"$METRICS_DIR/mcp-request-cs"
	fi
	log_request "$1" "$length"
	exit 0
}

respond_json() { # CODE REASON BODY [EXTRA-HEADER]
	respond "$1" "$2" application/json "$3" "${4:-}"
}

fail() { # CODE REASON MESSAGE
	json_esc "$3"
	respond_json "$1" "$2" "{\"error\":\"$JSON\",\"service\":\"$SERVICE_NAME\"}"
}

# shellcheck disable=SC2034 # body and the mcp_* headers are read by routes.sh and mcp.sh
read_request() {
	IFS= read -r -t 10 request_line || exit 0
	request_line=${request_line%"$CR"}
	method=${request_line%% *}
	rest=${request_line#* }
	target=${rest%% *}
	path=${target%%\?*}
	content_length=0
	mcp_version='' mcp_method='' mcp_name=''
	while IFS= read -r -t 10 line; do
		line=${line%"$CR"}
		[ -z "$line" ] && break
		value=${line#*:}
		value=${value# }
		case ${line%%:*} in
		[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]) content_length=$value ;;
		[Tt][Rr][Aa][Nn][Ss][Ff][Ee][Rr]-[Ee][Nn][Cc][Oo][Dd][Ii][Nn][Gg]) fail 411 "Length Required" "send a Content-Length" ;;
		# what mcp.sh needs of the headers (MCP revision 2026-07-28 repeats the body's method and version there)
		[Mm][Cc][Pp]-[Pp][Rr][Oo][Tt][Oo][Cc][Oo][Ll]-[Vv][Ee][Rr][Ss][Ii][Oo][Nn]) mcp_version=$value ;;
		[Mm][Cc][Pp]-[Mm][Ee][Tt][Hh][Oo][Dd]) mcp_method=$value ;;
		[Mm][Cc][Pp]-[Nn][Aa][Mm][Ee]) mcp_name=$value ;;
		esac
	done
	case $content_length in
	'' | *[!0-9]*) fail 400 "Bad Request" "bad Content-Length" ;;
	esac
	[ "$content_length" -gt "$MAX_BODY" ] && fail 413 "Content Too Large" "body over $MAX_BODY bytes"
	body=
	if [ "$content_length" -gt 0 ]; then
		IFS= read -r -d '' -n "$content_length" -t 10 body || fail 400 "Bad Request" "body shorter than Content-Length"
	fi
}

health() {
	if [ "$BROKEN" = unhealthy ]; then
		respond_json 503 "Service Unavailable" \
			"{\"status\":\"unhealthy\",\"service\":\"$SERVICE_NAME\",\"release\":\"$RELEASE_JSON\"}"
	fi
	respond_json 200 OK \
		"{\"status\":\"healthy\",\"service\":\"$SERVICE_NAME\",\"release\":\"$RELEASE_JSON\"}"
}

read_request
case "$method $path" in
"GET /health" | "HEAD /health") health ;;
esac
# shellcheck source=/dev/null
. "$APP_HOME/common/routes.sh"
