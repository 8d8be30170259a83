# shellcheck shell=sh
# body comes from handler.sh:
# shellcheck disable=SC2154
# MCP over HTTP for the gateway: JSON-RPC 2.0 on POST, the streamable HTTP transport answering with plain
# application/json. Sourced by handler.sh, which provides $body, respond and respond_json.
# Request ids go back exactly as sent (numbers stay numbers, strings keep their escapes).

MCP_DEFAULT_VERSION=2025-06-18
TAB=$(printf '\t')

# The raw JSON value at a path of the flattened request ("" is the whole request).
jget() {
	printf '%s\n' "$flat" | awk -F "$TAB" -v k="$1" '$1 == k { print substr($0, length(k) + 2); exit }'
}

rpc_result() { # ID RESULT [EXTRA-HEADER]
	respond_json 200 OK "{\"jsonrpc\":\"2.0\",\"id\":$1,\"result\":$2}" "${3:-}"
}

rpc_error() { # HTTP-CODE HTTP-REASON ID CODE MESSAGE
	respond_json "$1" "$2" "{\"jsonrpc\":\"2.0\",\"id\":$3,\"error\":{\"code\":$4,\"message\":\"$5\"}}"
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

call_tool() {
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
	rpc_result "$id" "{\"content\":[{\"type\":\"text\",\"text\":\"$text\"}],\"isError\":false}"
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
