# shellcheck shell=sh
# body and the mcp_* headers come from handler.sh:
# shellcheck disable=SC2154
# MCP over HTTP for the gateway: JSON-RPC 2.0 on POST, the streamable HTTP transport answering with plain
# application/json. Sourced by handler.sh, which provides $body, the MCP headers, respond and respond_json.
# Request ids go back exactly as sent (numbers stay numbers, strings keep their escapes).
# Two eras, told apart by the MCP-Protocol-Version header: the initialize handshake (the revisions up to
# 2025-11-25, and no header at all) and revision 2026-07-28, where every request is self-contained: the
# version and client capabilities ride in params._meta, no initialize, no session.

# Deliberately broken tools/call (BROKEN, README.md): `errors` fails every ERRORS_EVERY-th call since the container
# started (a byte appended to TOOL_CALLS per call, its size is the call's number); `latency` answers every call
# after LATENCY_S seconds.
ERRORS_EVERY=2
TOOL_CALLS=/tmp/tool-calls
LATENCY_S=1

MCP_DEFAULT_VERSION=2025-06-18
HANDSHAKE_VERSIONS="2024-11-05 2025-03-26 2025-06-18 2025-11-25"
PER_REQUEST_VERSION=2026-07-28
META=params._meta.io.modelcontextprotocol
TAB=$(printf '\t')

# The raw JSON value at a path of the flattened request ("" is the whole request).
jget() {
	printf '%s\n' "$flat" | awk -F "$TAB" -v k="$1" '$1 == k { print substr($0, length(k) + 2); exit }'
}

rpc_result() { # ID RESULT [EXTRA-HEADER]
	respond_json 200 OK "{\"jsonrpc\":\"2.0\",\"id\":$1,\"result\":$2}" "${3:-}"
}

rpc_error() { # HTTP-CODE HTTP-REASON ID CODE MESSAGE [DATA]
	respond_json "$1" "$2" "{\"jsonrpc\":\"2.0\",\"id\":$3,\"error\":{\"code\":$4,\"message\":\"$5\"${6:+,\"data\":$6}}}"
}

tools_json() {
	sed 's/^[[:space:]]*//' "$APP_HOME/service/tools.json" | tr -d '\n'
}

initialize() {
	version=$(jget params.protocolVersion)
	case $version in
	\"*) ;;
	*) version="\"$MCP_DEFAULT_VERSION\"" ;;
	esac
	mcp_id=$(cat /proc/sys/kernel/random/uuid)
	json_esc "$SVC_DESCRIPTION"
	rpc_result "$id" "{\"protocolVersion\":$version,\"capabilities\":{\"tools\":{}},\
\"serverInfo\":{\"name\":\"$SERVICE_NAME\",\"version\":\"$SVC_VERSION\"},\
\"instructions\":\"$JSON\"}" "Mcp-Session-Id: $mcp_id"
}

# Revision 2026-07-28: the envelope is checked as the SDK servers do (first failure answers), then the method.
per_request() {
	[ -z "$id" ] && respond 202 Accepted "" ""
	version=$(jget "$META/protocolVersion")
	if [ -z "$version" ] || [ -z "$(jget "$META/clientCapabilities")" ]; then
		rpc_error 400 "Bad Request" "$id" -32602 "params._meta is missing the required envelope key(s): \
io.modelcontextprotocol/protocolVersion, io.modelcontextprotocol/clientCapabilities"
	fi
	[ "$version" = "\"$mcp_version\"" ] ||
		rpc_error 400 "Bad Request" "$id" -32020 "MCP-Protocol-Version header does not match params._meta"
	[ "\"$mcp_method\"" = "$rpc_method" ] ||
		rpc_error 400 "Bad Request" "$id" -32020 "Mcp-Method header does not match the request body's method"
	[ "$mcp_version" = "$PER_REQUEST_VERSION" ] || rpc_error 400 "Bad Request" "$id" -32022 \
		"Unsupported protocol version" "{\"supported\":[\"$PER_REQUEST_VERSION\"],\"requested\":$version}"
	# Every result says it is complete; the cacheable ones (discover, lists) may be reused for 0 ms, by this client.
	complete=',"resultType":"complete"'
	cacheable="$complete,\"ttlMs\":0,\"cacheScope\":\"private\""
	case $rpc_method in
	'"server/discover"')
		rpc_result "$id" "{\"supportedVersions\":[\"$PER_REQUEST_VERSION\"],\"capabilities\":{\"tools\":{}}$cacheable,\
\"_meta\":{\"io.modelcontextprotocol/serverInfo\":{\"name\":\"$SERVICE_NAME\",\"version\":\"$SVC_VERSION\"}}}"
		;;
	'"ping"') rpc_result "$id" "{${complete#,}}" ;;
	'"tools/list"') rpc_result "$id" "{\"tools\":$(tools_json)$cacheable}" ;;
	'"tools/call"')
		[ "\"$mcp_name\"" = "$(jget params.name)" ] ||
			rpc_error 400 "Bad Request" "$id" -32020 "Mcp-Name header does not match the request body's 'name' parameter"
		call_tool
		;;
	*)
		json_esc "$rpc_method"
		rpc_error 404 "Not Found" "$id" -32601 "Method not found: $JSON"
		;;
	esac
}

call_tool() {
	case $BROKEN in
	errors)
		printf x >>"$TOOL_CALLS"
		calls=$(($(wc -c <"$TOOL_CALLS")))
		[ $((calls % ERRORS_EVERY)) -eq 0 ] && rpc_error 500 "Internal Server Error" "$id" -32603 \
			"Internal error: deliberately broken image (BROKEN=errors fails one tools/call in $ERRORS_EVERY): call $calls"
		;;
	latency) sleep "$LATENCY_S" ;;
	esac
	name=$(jget params.name)
	case $name in
	\"*) ;;
	*) rpc_error 200 OK "$id" -32602 "Invalid params: a tool name is required" ;;
	esac
	tools_json | awk -f "$APP_HOME/common/json.awk" |
		awk -F "$TAB" -v want="$name" '$1 ~ /^[0-9]+\.name$/ && $2 == want { found = 1 } END { exit !found }' ||
		{ json_esc "$name" && rpc_error 200 OK "$id" -32602 "Unknown tool: $JSON"; }
	text="${name#\"}"
	text="${text%\"} accepted the task (example gateway, release $RELEASE_JSON)"
	rpc_result "$id" "{\"content\":[{\"type\":\"text\",\"text\":\"$text\"}],\"isError\":false${complete:-}}"
}

mcp() {
	flat=$(printf '%s' "$body" | awk -f "$APP_HOME/common/json.awk") ||
		rpc_error 400 "Bad Request" null -32700 "Parse error"
	[ "$(jget '')" = "{" ] || rpc_error 400 "Bad Request" null -32600 "Invalid Request: expected one object"
	id=$(jget id)
	case $id in
	'' | \"* | -[0-9]* | [0-9]*) ;;
	*) rpc_error 400 "Bad Request" null -32600 "Invalid Request: id must be a string or a number" ;;
	esac
	rpc_method=$(jget method)
	if [ -z "$rpc_method" ]; then
		# A response or an error that the client sends back: accepted, nothing to answer.
		[ -n "$(jget result)$(jget error)" ] && respond 202 Accepted "" ""
		rpc_error 400 "Bad Request" "${id:-null}" -32600 "Invalid Request: no method"
	fi
	case " $HANDSHAKE_VERSIONS " in
	*" ${mcp_version:-$MCP_DEFAULT_VERSION} "*) ;;
	*) per_request ;;
	esac
	# A notification (no id) gets no JSON-RPC answer.
	[ -z "$id" ] && respond 202 Accepted "" ""
	case $rpc_method in
	'"initialize"') initialize ;;
	'"ping"') rpc_result "$id" '{}' ;;
	'"tools/list"') rpc_result "$id" "{\"tools\":$(tools_json)}" ;;
	'"tools/call"') call_tool ;;
	\"*)
		json_esc "$rpc_method"
		rpc_error 200 OK "$id" -32601 "Method not found: $JSON"
		;;
	*) rpc_error 400 "Bad Request" "$id" -32600 "Invalid Request: method must be a string" ;;
	esac
}
