"""The bench's (e) as text (bench/release_flow_table.py, bench/common.py): the host's timings read from its audit
and job logs, each row's cells and the summary's ratio of failed requests, as exact strings. A wrong origin or a
misread log line would print a time to detect that was never measured."""

from __future__ import annotations

from typing import Any

from bench import common as c
from bench import release_flow_table as view

T0 = view.utc_seconds("2026-12-02T14:35:15Z")


def _load(failed: int, scheduled: int, **errors: int) -> dict[str, Any]:
    return {"failed": failed, "scheduled": scheduled, "down": failed, "timed_out": 0, "not_sent": 0,
            "errors": {k.replace("_", " "): v for k, v in errors.items()}}


def test_failed_ratio_says_naive_over_ours_and_names_the_cases_without_a_ratio():
    """Neither failed, only one failed: a division would print nonsense or crash."""
    assert c.failed_ratio(40, 10) == "ours 4.0x fewer"
    assert c.failed_ratio(10, 40) == "ours 4.0x more"
    assert c.failed_ratio(7, 7) == "ours 1.0x fewer"
    assert c.failed_ratio(0, 0) == "0 vs 0"
    assert c.failed_ratio(12, 0) == "∞ (ours 0)"
    assert c.failed_ratio(0, 3) == "ours 3 more (naive 0)"


def test_utc_seconds_reads_the_audit_time():
    assert view.utc_seconds("1970-01-01T00:01:05Z") == 65.0


FAILED_EVENTS = [
    {"event": "secrets.updated", "ts": "2026-12-02T14:35:14Z", "project": "green"},
    {"event": "apply.started", "ts": "2026-12-02T14:35:15Z", "job": "J1", "release": "bad", "previous": "good"},
    {"event": "apply.failed", "ts": "2026-12-02T14:35:44Z", "job": "J1", "release": "bad", "stage": "up",
     "reason": "container green-gateway-mcp-1 is unhealthy"},
    {"event": "rollback.succeeded", "ts": "2026-12-02T14:35:44Z", "job": "J1", "release": "good", "failed": "bad"},
]
FAILED_LOG = """[14:35:15] release bad written to /opt/devtools/green/releases/bad (7 pinned images)
[14:35:15] apply: good → bad
[14:35:16] pulled images of bad (0.8s)
[14:35:27] apply of bad failed at up: container green-gateway-mcp-1 is unhealthy
[14:35:30] restoring previous release good
[14:35:31] pulled images of good (0.2s)
[14:35:44] FAILED: apply of bad failed at up: container green-gateway-mcp-1 is unhealthy
"""


def test_a_failed_apply_is_timed_from_its_container_switch_to_its_failure_and_restore():
    """The switch starts once the images are pulled (`pulled images of <release>`, not of the restored one); the
    failure is the job log's own line, not the audit entry written after the restore."""
    check = view.host_check(FAILED_EVENTS, {"J1": FAILED_LOG}, "bad")
    assert check == {"result": "failed", "stage": "up", "reason": "container green-gateway-mcp-1 is unhealthy",
                     "switch_at": T0 + 1, "failed_at": T0 + 12, "restored_at": T0 + 29}
    assert view.validation_cell(check) == "failed at up after 11 s"


def test_a_gate_failure_is_read_from_the_gate_job_log():
    events = [{"event": "apply.started", "ts": "2026-12-02T14:35:15Z", "job": "J1", "release": "bad"},
              {"event": "apply.succeeded", "ts": "2026-12-02T14:35:20Z", "job": "J1", "release": "bad"},
              {"event": "gate.failed", "ts": "2026-12-02T14:35:40Z", "job": "J2", "release": "bad",
               "stage": "validate"}]
    logs = {"J1": "[14:35:15] apply: good → bad\n[14:35:16] pulled images of bad (0.8s)\n",
            "J2": "[14:35:21] gate: validating bad\n[14:35:23] gate of bad failed at validate: validation failed\n"}
    check = view.host_check(events, logs, "bad")
    assert (check["result"], check["switch_at"], check["failed_at"], check["restored_at"]) == (
        "failed", T0 + 1, T0 + 8, None)
    assert view.validation_cell(check) == "failed at validate after 7 s"


def test_job_log_times_after_midnight_follow_the_apply_start():
    """The job log has the time of day only: a line after midnight is later than the apply's start, not a day
    earlier."""
    events = [{"event": "apply.started", "ts": "2026-12-02T23:59:58Z", "job": "J", "release": "r"},
              {"event": "apply.succeeded", "ts": "2026-12-03T00:00:09Z", "job": "J", "release": "r"}]
    log = "[23:59:58] apply: a → r\n[00:00:01] pulled images of r (2.9s)\n"
    check = view.host_check(events, {"J": log}, "r")
    assert check["switch_at"] - view.utc_seconds("2026-12-02T23:59:58Z") == 3
    assert check["result"] == "passed" and view.validation_cell(check) == "passed"


def test_no_record_on_the_host_reads_as_unknown():
    check = view.host_check([{"event": "apply.started", "ts": "2026-12-02T14:35:15Z", "job": "J", "release": "x"}],
                            {}, "r")
    assert check["result"] is None and check["switch_at"] is None
    assert view.validation_cell(check) == "-"
    assert view.validation_cell({"result": "failed", "stage": "up"}) == "failed at up"


FLIPPED = ("flipped back to blue: post-promotion analysis failed: error-ratio failed 2 of 2 measurements, more "
           "than the 1 allowed; the last: 0.3921 > max 0.01; 7.0s from the first failing measurement to traffic on "
           "blue, bake window 30s\n")


def test_the_flip_back_comes_from_the_record_else_from_the_flows_printed_seconds():
    """A record without flipped_back_at must not read as "not reverted" when the flow said it flipped back."""
    post = {"phase": "failed", "first_failure_at": 1000.5}
    assert view.flipped_back({"post": post, "flipped_back_at": 1009.25}, FLIPPED) == (1009.25, "record")
    assert view.flipped_back({"post": post}, "noise\n" + FLIPPED) == (1007.5, "printed")
    assert view.flipped_back({"post": {"phase": "passed"}}, FLIPPED) == (None, "-")
    assert view.flipped_back({"post": post}, "done: r is stable on blue\n") == (None, "-")


def _row(way: str, outcome: str, load: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"way": way, "outcome": outcome, "load": load, "bad": True, "never_on_traffic": False, "seconds": 61.234,
            "watched_s": 0.0, "origin_at": T0, "detected_at": None, "reverted_at": None, "validation": {}, **kw}


RESULT: dict[str, Any] = {"rate": 20.0, "lb": "http://127.0.0.1:8080", "window_s": 30.0, "rows": {
    "good": {"naive": {**_row("naive", "applied", _load(0, 1400)), "bad": False,
                       "validation": {"result": "passed"}},
             "ours": {**_row("ours", "stable", _load(0, 3000)), "bad": False, "validation": {"result": "passed"}}},
    "errors": {
        "naive": _row("naive", "applied", _load(700, 2100, HTTP_500=700), watched_s=30.0,
                      validation={"result": "passed"}),
        "ours": _row("ours", "flipped back", _load(90, 3100, HTTP_500=90), detected_at=T0 + 5.5,
                     reverted_at=T0 + 11.25, validation={"result": "passed"}),
    },
    "unhealthy": {
        "naive": _row("naive", "restored by the host", _load(300, 900, HTTP_503=280, ConnectionResetError=20),
                      detected_at=T0 + 11, reverted_at=T0 + 31.5, load_covered=False,
                      validation={"result": "failed", "stage": "up", "switch_at": T0, "failed_at": T0 + 11}),
        "ours": _row("ours", "never promoted", _load(0, 2000), never_on_traffic=True, origin_at=None,
                     validation={"result": "failed", "stage": "up", "switch_at": T0, "failed_at": T0 + 12}),
    },
}}


def test_each_row_says_outcome_failures_detect_revert_validation_and_time():
    """An undetected bad release says so (not a dash), one that never took traffic has no time to detect, and
    an in-place release left running shows the bake window it was watched for."""
    assert view.rows(RESULT) == [
        ["good release (code-review comment)", "in place (pulumi up)", "applied", "0/1400", "-", "-", "passed",
         "61.23 s", "-"],
        ["good release (code-review comment)", "ours (ops.cli release)", "stable", "0/3000", "-", "-", "passed",
         "61.23 s", "-"],
        ["bad under traffic (gateway-mcp errors)", "in place (pulumi up)", "applied",
         "700/2100 (700 down, 0 overloaded)", "not detected", "not reverted", "passed", "61.23 s + 30 s watched",
         "HTTP 500 700"],
        ["bad under traffic (gateway-mcp errors)", "ours (ops.cli release)", "flipped back",
         "90/3100 (90 down, 0 overloaded)", "5.50 s", "11.25 s", "passed", "61.23 s", "HTTP 500 90"],
        ["fails validation (gateway-mcp unhealthy)", "in place (pulumi up)", "restored by the host",
         "300/900 (300 down, 0 overloaded)", "11.00 s", "31.50 s", "failed at up after 11 s", "61.23 s",
         "the load stopped before the release ended; HTTP 503 280, ConnectionResetError 20"],
        ["fails validation (gateway-mcp unhealthy)", "ours (ops.cli release)", "never promoted", "0/2000",
         "never on traffic", "-", "failed at up after 12 s", "61.23 s", "-"],
    ]


def test_the_summary_has_one_line_per_release_with_the_ratio_of_failed_requests():
    assert view.summary_rows(RESULT) == [
        ["(e) failed requests, good release (code-review comment)", "0/1400", "0/3000", "0 vs 0"],
        ["(e) failed requests, bad under traffic (gateway-mcp errors)", "700/2100 (700 down, 0 overloaded)",
         "90/3100 (90 down, 0 overloaded)", "ours 7.8x fewer"],
        ["(e) failed requests, fails validation (gateway-mcp unhealthy)", "300/900 (300 down, 0 overloaded)",
         "0/2000", "∞ (ours 0)"],
    ]


def test_a_partial_result_prints_what_was_measured():
    """A run that failed half-way keeps its rows: the table and summary show them, a dash for the missing way."""
    partial = {**RESULT, "window_s": None, "rows": {"good": {"ours": RESULT["rows"]["good"]["ours"]}, "errors": {},
                                                    "unhealthy": {}}}
    assert [r[:3] for r in view.rows(partial)] == [
        ["good release (code-review comment)", "ours (ops.cli release)", "stable"]]
    assert view.summary_rows(partial) == [
        ["(e) failed requests, good release (code-review comment)", "-", "0/3000", "-"]]
    assert view.notes(partial)[1] == "  bake window unknown (setup did not finish)"
    assert view.notes(RESULT)[1] == ("  bake window 30 s; an in-place release that stays up is watched as long "
                                     "after its update")
