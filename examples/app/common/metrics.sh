# shellcheck shell=sh
# GET /metrics in the Prometheus text format (sourced by routes.sh; respond comes from handler.sh):
#   http_requests_total{service,code,status}   counter: every answer, by status code (the code in both labels,
#                                              so that queries may use either name); one byte appended to
#                                              METRICS_DIR/<code> per answer, the file's size is the count
#   process_start_time_seconds{service}        gauge: when the entrypoint started the server (unix time, to the
#                                              microsecond), so changes(...[5m]) counts restarts
#   http_request_duration_seconds{service,le}  histogram (gateway only): the time each POST /mcp took from the
#                                              handler's start to its answer, to the 10 ms of /proc/uptime
#   devtools_build_info{service,version,release,broken}  gauge 1: the running image
# shellcheck disable=SC2154 # SERVICE_NAME, SVC_*, RELEASE_JSON, BROKEN and METRICS_DIR come from handler.sh

# The histogram's upper bounds in centiseconds: 0.05 0.1 0.25 0.5 1 2.5 5 seconds, then +Inf.
DURATION_BUCKETS_CS="5 10 25 50 100 250 500"

metrics() {
	labels="service=\"$SERVICE_NAME\""
	out="# HELP http_requests_total HTTP requests answered, by status code.
# TYPE http_requests_total counter"
	for file in "$METRICS_DIR"/[1-5][0-9][0-9]; do
		[ -f "$file" ] || continue
		code=${file##*/}
		out="$out
http_requests_total{$labels,code=\"$code\",status=\"$code\"} $(wc -c <"$file")"
	done
	start=
	[ -f "$METRICS_DIR/start-time" ] && read -r start <"$METRICS_DIR/start-time"
	if [ -n "$start" ]; then
		out="$out
# HELP process_start_time_seconds Start time of the service's server since the unix epoch, in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds{$labels} $start"
	fi
	if [ "$SVC_ROLE" = gateway ]; then
		durations=$METRICS_DIR/mcp-request-cs
		[ -f "$durations" ] || durations=/dev/null
		out="$out
$(awk -v labels="$labels" -v bounds="$DURATION_BUCKETS_CS" -v name=http_request_duration_seconds '
BEGIN { nb = split(bounds, le, " ") }
{ n++; sum += $1; for (i = 1; i <= nb; i++) if ($1 <= le[i]) below[i]++ }
END {
	print "# HELP " name " Time the gateway took to answer POST /mcp (10 ms resolution)."
	print "# TYPE " name " histogram"
	for (i = 1; i <= nb; i++) printf "%s_bucket{%s,le=\"%s\"} %d\n", name, labels, le[i] / 100, below[i]
	printf "%s_bucket{%s,le=\"+Inf\"} %d\n", name, labels, n
	printf "%s_sum{%s} %.2f\n%s_count{%s} %d\n", name, labels, sum / 100, name, labels, n
}' "$durations")"
	fi
	out="$out
# HELP devtools_build_info The running image of the service.
# TYPE devtools_build_info gauge
devtools_build_info{$labels,version=\"$SVC_VERSION\",release=\"$RELEASE_JSON\",broken=\"$BROKEN\"} 1
"
	respond 200 OK "text/plain; version=0.0.4; charset=utf-8" "$out"
}
