# Flattens one JSON document into lines "PATH<TAB>RAW", one for every value in it.
#   * PATH joins object keys and array indexes with dots ("params.protocolVersion", "items.0"); the
#     document itself has the empty path.
#   * RAW is the value exactly as sent for strings, numbers, true, false and null (strings keep their
#     quotes and escapes), and "{" or "[" for objects and arrays.
# Exits 1 when the input is not one well-formed JSON value.
# Usage: awk -f json.awk < body.json

{ text = text $0 "\n" }

END {
	n = split(text, ch, "")
	pos = 1
	if (!parse_value("")) exit 1
	skip_ws()
	if (pos <= n) exit 1
}

function skip_ws() {
	while (pos <= n && (ch[pos] == " " || ch[pos] == "\t" || ch[pos] == "\n" || ch[pos] == "\r")) pos++
}

function join(path, key) {
	return path == "" ? key : path "." key
}

function parse_value(path,    c, raw) {
	skip_ws()
	if (pos > n) return 0
	c = ch[pos]
	if (c == "{") return parse_object(path)
	if (c == "[") return parse_array(path)
	if (c == "\"") {
		raw = parse_string()
		if (raw == "") return 0
		print path "\t" raw
		return 1
	}
	raw = ""
	while (pos <= n && ch[pos] ~ /[-+.0-9a-zA-Z]/) raw = raw ch[pos++]
	if (raw !~ /^(-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?|true|false|null)$/) return 0
	print path "\t" raw
	return 1
}

# Returns the string token starting at pos (quotes included) and moves past it; "" when malformed.
function parse_string(    raw, c) {
	raw = "\""
	pos++
	while (pos <= n) {
		c = ch[pos++]
		if (c == "\\") {
			if (pos > n) return ""
			raw = raw c ch[pos++]
			continue
		}
		raw = raw c
		if (c == "\"") return raw
		if (c == "\n") return ""
	}
	return ""
}

function parse_object(path,    key) {
	print path "\t{"
	pos++
	skip_ws()
	if (ch[pos] == "}") { pos++; return 1 }
	while (1) {
		skip_ws()
		if (ch[pos] != "\"") return 0
		key = parse_string()
		if (key == "") return 0
		skip_ws()
		if (ch[pos] != ":") return 0
		pos++
		if (!parse_value(join(path, substr(key, 2, length(key) - 2)))) return 0
		skip_ws()
		if (ch[pos] == ",") { pos++; continue }
		if (ch[pos] == "}") { pos++; return 1 }
		return 0
	}
}

function parse_array(path,    i) {
	print path "\t["
	pos++
	skip_ws()
	if (ch[pos] == "]") { pos++; return 1 }
	for (i = 0; ; i++) {
		if (!parse_value(join(path, i))) return 0
		skip_ws()
		if (ch[pos] == ",") { pos++; continue }
		if (ch[pos] == "]") { pos++; return 1 }
		return 0
	}
}
