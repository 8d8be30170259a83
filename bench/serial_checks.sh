#!/usr/bin/env bash
# The serial way to validate a release: one curl after another, each check once, no concurrency.
# Reads the checks from standard input, one per line:
#   health URL              GET, expects HTTP 200
#   mcp    URL MIN_TOOLS PROTOCOL
#                           expects at least MIN_TOOLS tools from tools/list, asked as the compose label says:
#                           per-request (MCP 2026-07-28, one POST), handshake (initialize, notifications/initialized,
#                           tools/list) or auto (per request, then the handshake when that gets no result)
#   e2e    URL EXPECT       POST {}, expects HTTP 200 and EXPECT in the body
# Prints one line per check; exits 0 when every check passed, 1 otherwise.
set -uo pipefail

TIMEOUT=${TIMEOUT:-5}
ACCEPT='Accept: application/json, text/event-stream'
JSON='Content-Type: application/json'
failed=0

ok() { printf 'ok   %s\n' "$*"; }
bad() { printf 'FAIL %s\n' "$*"; failed=1; }

check_health() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time "$TIMEOUT" "$1") || true
  if [[ $code == 200 ]]; then ok "health $1"; else bad "health $1: HTTP $code"; fi
}

check_e2e() {
  local out code body
  out=$(curl -s -w '\n%{http_code}' --max-time "$TIMEOUT" -X POST -H "$JSON" -d '{}' "$1") || true
  code=${out##*$'\n'}
  body=${out%$'\n'*}
  if [[ $code == 200 && $body == *"$2"* ]]; then ok "e2e $1"; else bad "e2e $1: HTTP $code ${body:0:80}"; fi
}

# Sets tools to the answer of a tools/list of revision 2026-07-28 (one self-contained POST).
tools_per_request() {
  local meta='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
  tools=$(curl -s --max-time "$TIMEOUT" -X POST -H "$JSON" -H "$ACCEPT" -H 'MCP-Protocol-Version: 2026-07-28' \
    -H 'Mcp-Method: tools/list' -d '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{'"$meta"'}}' "$1") || true
}

# Sets tools to the answer of tools/list after the initialize handshake; returns 1 when initialize failed.
tools_handshake() {
  local url=$1 headers sid
  headers=$(curl -s -D - -o /dev/null --max-time "$TIMEOUT" -X POST -H "$JSON" -H "$ACCEPT" \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"serial-checks","version":"1"}}}' \
    "$url") || true
  if [[ $headers != HTTP/1.[01]\ 200* ]]; then tools="initialize: ${headers%%$'\r'*}"; return 1; fi
  sid=$(tr -d '\r' <<<"$headers" | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: *//p')
  curl -s -o /dev/null --max-time "$TIMEOUT" -X POST -H "$JSON" -H "$ACCEPT" -H "Mcp-Session-Id: $sid" \
    -d '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$url" || true
  tools=$(curl -s --max-time "$TIMEOUT" -X POST -H "$JSON" -H "$ACCEPT" -H "Mcp-Session-Id: $sid" \
    -H 'MCP-Protocol-Version: 2025-06-18' -d '{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}' "$url") || true
}

check_mcp() {
  local url=$1 min=$2 protocol=${3:-auto} tools='' count
  if [[ $protocol != handshake ]]; then tools_per_request "$url"; fi
  if [[ $protocol == handshake || ($protocol == auto && $tools != *'"result"'*) ]]; then
    tools_handshake "$url" || { bad "mcp $url: $tools"; return; }
  fi
  count=$(grep -o '"inputSchema"' <<<"$tools" | wc -l)
  if ((count >= min)); then ok "mcp $url: $count tools"; else bad "mcp $url: $count tools, fewer than $min"; fi
}

while read -r kind url arg protocol; do
  case $kind in
    health) check_health "$url" ;;
    mcp) check_mcp "$url" "${arg:-1}" "${protocol:-auto}" ;;
    e2e) check_e2e "$url" "$arg" ;;
    '') ;;
    *) bad "unknown check kind '$kind'" ;;
  esac
done
exit "$failed"
