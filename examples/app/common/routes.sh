# shellcheck shell=sh
# The routes of handler.sh after GET /health, sourced by it once the request is read (method, path, body and
# the MCP headers are set; respond, respond_json and fail answer and exit). GET /metrics: metrics.sh; POST /mcp
# on the gateway: mcp.sh.
# shellcheck disable=SC2154 # method, path, body and the helpers' variables come from handler.sh

UPSTREAM_TIMEOUT=5 # seconds the gateway waits for the state service
E2E_STATE_TIMEOUT=2 # seconds an agent's end-to-end probe waits for it

info() {
	json_esc "$SVC_DESCRIPTION"
	respond_json 200 OK "{\"service\":\"$SERVICE_NAME\",\"role\":\"$SVC_ROLE\",\"version\":\"$SVC_VERSION\",\
\"description\":\"$JSON\",\"release\":\"$RELEASE_JSON\"}"
}

# An agent is only ok when it can reach its data: it asks the state service (STATE_URL) first. Each probe sends
# one trace to Langfuse (trace.sh; BROKEN=notrace sends none).
e2e() {
	[ "$SVC_ROLE" = agent ] || fail 404 "Not Found" "no route $method $path"
	[ "$BROKEN" = slow ] && sleep 30
	if [ "$BROKEN" != notrace ]; then
		# shellcheck source=/dev/null
		. "$APP_HOME/common/trace.sh"
		send_trace
	fi
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

case "$method $path" in
"GET /metrics")
	# shellcheck source=/dev/null
	. "$APP_HOME/common/metrics.sh"
	metrics
	;;
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
