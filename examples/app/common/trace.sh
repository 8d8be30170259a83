# shellcheck shell=sh
# One Langfuse trace per end-to-end probe (sourced by routes.sh): a `trace-create` event through the ingestion API
# (POST $LANGFUSE_HOST/api/public/ingestion, HTTP basic auth LANGFUSE_PUBLIC_KEY:LANGFUSE_SECRET_KEY, from the
# app's secrets file) with the tags devtools-e2e and agent:<service>, named e2e-probe. Best effort: without the
# variables, or with Langfuse down or slow, the probe answers as it would have.
# The request is written by shell builtins into `nc`'s stdin, so the keys never appear in a process's argv (busybox
# wget takes headers as arguments only). Plain http only (the example image has no TLS client).

TRACE_TIMEOUT=2 # seconds the probe gives Langfuse

send_trace() {
	[ -n "${LANGFUSE_HOST:-}" ] && [ -n "${LANGFUSE_PUBLIC_KEY:-}" ] && [ -n "${LANGFUSE_SECRET_KEY:-}" ] || return 0
	case "$LANGFUSE_HOST" in
	http://*) ;;
	*) return 0 ;;
	esac
	hostport=${LANGFUSE_HOST#http://}
	hostport=${hostport%%/*}
	host=${hostport%:*}
	port=${hostport##*:}
	[ "$host" = "$hostport" ] && port=80
	id=$(cat /proc/sys/kernel/random/uuid 2>/dev/null) || id="$SERVICE_NAME-$$"
	now=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
	json_esc "$SERVICE_NAME"
	event="{\"batch\":[{\"id\":\"$id\",\"timestamp\":\"$now\",\"type\":\"trace-create\",\"body\":{\"id\":\"$id\",\
\"timestamp\":\"$now\",\"name\":\"e2e-probe\",\"tags\":[\"devtools-e2e\",\"agent:$JSON\"],\
\"metadata\":{\"service\":\"$JSON\",\"release\":\"$RELEASE_JSON\"}}}]}"
	auth=$(printf '%s:%s' "$LANGFUSE_PUBLIC_KEY" "$LANGFUSE_SECRET_KEY" | base64 | tr -d '\n')
	printf 'POST /api/public/ingestion HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\nContent-Type: application/json\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' \
		"$hostport" "$auth" "${#event}" "$event" |
		timeout "$TRACE_TIMEOUT" nc -w "$TRACE_TIMEOUT" "$host" "$port" >/dev/null 2>&1 || true
}
