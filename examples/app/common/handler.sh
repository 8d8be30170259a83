#!/bin/sh
# Answers one HTTP/1.1 request on stdin/stdout (the connection); nc starts one of these per connection.
# Every answer carries `Connection: close`, so a client never waits on a kept-alive socket.
# Routes: GET /health, GET /metrics, GET / (service info); POST /e2e (agents, which first ask STATE_URL);
# POST /mcp and GET/POST /state (gateway: /state is forwarded to STATE_URL); GET and POST on SVC_STORE (services
# that keep data under DATA_DIR).
# busybox ash has read -t/-n/-d, ${var//old/new} and $'\r', which POSIX sh lacks:
# shellcheck disable=SC3003,SC3045,SC3060
set -u
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
UPSTREAM_TIMEOUT=5 # seconds the gateway waits for the state service
E2E_STATE_TIMEOUT=2 # seconds an agent's end-to-end probe waits for it
CR=$'\r'
method=-
path=-

# One line per request on the container's stdout (fd 3, kept open by the entrypoint).
log_request() {
	{ printf '%s %s %s %s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$SERVICE_NAME" "$method" "$path" "$1" "$2" >&3; } 2>/dev/null
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

read_request() {
	IFS= read -r -t 10 request_line || exit 0
	request_line=${request_line%"$CR"}
	method=${request_line%% *}
	rest=${request_line#* }
	target=${rest%% *}
	path=${target%%\?*}
	content_length=0
	mcp_version='' mcp_method='' mcp_name=''
	# shellcheck disable=SC2034 # the mcp_* headers are read by mcp.sh
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

metrics() {
	labels="service=\"$SERVICE_NAME\""
	# The status code goes in two labels, `code` and `status`, so that queries may use either name.
	out="# HELP http_requests_total HTTP requests answered, by status code.
# TYPE http_requests_total counter"
	for file in "$METRICS_DIR"/*; do
		[ -f "$file" ] || continue
		code=${file##*/}
		out="$out
http_requests_total{$labels,code=\"$code\",status=\"$code\"} $(wc -c <"$file")"
	done
	out="$out
# HELP devtools_build_info The running image of the service.
# TYPE devtools_build_info gauge
devtools_build_info{$labels,version=\"$SVC_VERSION\",release=\"$RELEASE_JSON\",broken=\"$BROKEN\"} 1
"
	respond 200 OK "text/plain; version=0.0.4; charset=utf-8" "$out"
}

info() {
	json_esc "$SVC_DESCRIPTION"
	respond_json 200 OK "{\"service\":\"$SERVICE_NAME\",\"role\":\"$SVC_ROLE\",\"version\":\"$SVC_VERSION\",\
\"description\":\"$JSON\",\"release\":\"$RELEASE_JSON\"}"
}

# An agent is only ok when it can reach its data: it asks the state service (STATE_URL) first.
e2e() {
	[ "$SVC_ROLE" = agent ] || fail 404 "Not Found" "no route $method $path"
	[ "$BROKEN" = slow ] && sleep 30
	if [ -z "${STATE_URL:-}" ] ||
		! timeout "$E2E_STATE_TIMEOUT" wget -q -Y off -O /dev/null "$STATE_URL/state" 2>/dev/null; then
		json_esc "${STATE_URL:-(STATE_URL is not set)}"
		respond_json 503 "Service Unavailable" "{\"status\":\"degraded\",\"agent\":\"$SERVICE_NAME\",\
\"version\":\"$SVC_VERSION\",\"release\":\"$RELEASE_JSON\",\"error\":\"state unreachable at $JSON\"}"
	fi
	respond_json 200 OK "{\"status\":\"ok\",\"agent\":\"$SERVICE_NAME\",\"version\":\"$SVC_VERSION\",\
\"release\":\"$RELEASE_JSON\"}"
}

# The gateway's /state: users' reads and writes, forwarded to the state service at STATE_URL (the data tier);
# its JSON comes back as it is. A state service that cannot be reached (or answers an error) is a 502 naming it.
state_proxy() {
	[ "$SVC_ROLE" = gateway ] || fail 404 "Not Found" "no route $method $path"
	upstream=${STATE_URL:-}
	[ -n "$upstream" ] || fail 502 "Bad Gateway" "STATE_URL is not set: the gateway does not know the state service"
	errors=/tmp/state-proxy.$$
	code=200 reason=OK
	if [ "$method" = POST ]; then
		[ -n "$body" ] || fail 400 "Bad Request" "empty record"
		code=201 reason=Created
		answer=$(timeout "$UPSTREAM_TIMEOUT" wget -q -Y off -O - --header "Content-Type: application/json" \
			--post-data "$body" "$upstream/state" 2>"$errors")
	else
		answer=$(timeout "$UPSTREAM_TIMEOUT" wget -q -Y off -O - "$upstream/state" 2>"$errors")
	fi
	status=$?
	why=$(tr '\n' ' ' <"$errors" 2>/dev/null)
	rm -f "$errors"
	if [ "$status" -ne 0 ] || [ -z "$answer" ]; then
		json_esc "$upstream"
		url_json=$JSON
		json_esc "${why% }"
		[ -n "$JSON" ] || JSON="no answer within ${UPSTREAM_TIMEOUT}s"
		respond_json 502 "Bad Gateway" "{\"error\":\"state unreachable at STATE_URL=$url_json: $JSON\",\
\"service\":\"$SERVICE_NAME\",\"state_url\":\"$url_json\"}"
	fi
	respond_json "$code" "$reason" "$answer"
}

store() {
	[ -n "${DATA_DIR:-}" ] || fail 500 "Internal Server Error" "DATA_DIR is not set"
	records="$DATA_DIR/$SVC_STORE_FILE"
	if [ "$method" = POST ]; then
		[ -n "$body" ] || fail 400 "Bad Request" "empty record"
		record=$(printf '%s' "$body" | tr -d '\r\n')
		printf '%s\n' "$record" >>"$records"
	fi
	count=0
	[ -f "$records" ] && count=$(wc -l <"$records")
	code=200 reason=OK
	[ "$method" = POST ] && code=201 reason=Created
	respond_json "$code" "$reason" "{\"service\":\"$SERVICE_NAME\",\"records\":$count}"
}

read_request
case "$method $path" in
"GET /health" | "HEAD /health") health ;;
"GET /metrics") metrics ;;
"GET /") info ;;
"POST /e2e") e2e ;;
"POST /mcp")
	[ "$SVC_ROLE" = gateway ] || fail 404 "Not Found" "no route $method $path"
	[ "$BROKEN" = slow ] && sleep 30
	# shellcheck source=/dev/null
	. "$APP_HOME/common/mcp.sh"
	mcp
	;;
"GET /state" | "POST /state")
	# the gateway forwards (respond exits); the service that keeps records under /state answers itself
	[ "$SVC_ROLE" = gateway ] && state_proxy
	[ "${SVC_STORE:-}" = /state ] && store
	fail 404 "Not Found" "no route $method $path"
	;;
"GET /mcp" | "DELETE /mcp")
	[ "$SVC_ROLE" = gateway ] || fail 404 "Not Found" "no route $method $path"
	respond_json 405 "Method Not Allowed" '{"error":"this server answers POST only"}' "Allow: POST"
	;;
"GET ${SVC_STORE:-/-}" | "POST ${SVC_STORE:-/-}") store ;;
*) fail 404 "Not Found" "no route $method $path" ;;
esac
