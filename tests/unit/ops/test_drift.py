"""ops.drift: the stack's release vs one host's `hostagent status`, judged per service."""

from __future__ import annotations

from typing import Any

from ops import drift
from ops.drift import Finding

D1, D2, D3 = "sha256:" + "1" * 64, "sha256:" + "2" * 64, "sha256:" + "3" * 64


def intended(**images: str) -> dict[str, Any]:
    return {"id": "rel-7", "images": {k.replace("_", "-"): f"reg/devtools/{k}@{v}" for k, v in images.items()}}


def running(digest: str, service: str, state: str = "running", health: str | None = "healthy") -> dict[str, Any]:
    return {"container": f"green-{service}-1", "state": state, "health": health,
            "image": f"reg/devtools/{service}@{digest}"}


def status(current: str = "rel-7", **services: dict[str, Any]) -> dict[str, Any]:
    return {"current": current, "services": {k.replace("_", "-"): v for k, v in services.items()}}


def test_matching_release_has_only_ok_findings() -> None:
    got = drift.compare("web-0", intended(gateway=D1, orchestrator=D2),
                        status(gateway=running(D1, "gateway"), orchestrator=running(D2, "orchestrator")))
    assert got == [Finding("web-0", "gateway", "ok", D1, D1), Finding("web-0", "orchestrator", "ok", D2, D2)]
    assert drift.verdict(got) == (True, "no drift: 2 checks on 1 host(s) match the stack")


def test_one_digest_differs() -> None:
    got = drift.compare("web-0", intended(gateway=D1, orchestrator=D2),
                        status(gateway=running(D1, "gateway"), orchestrator=running(D3, "orchestrator")))
    assert got[1] == Finding("web-0", "orchestrator", "differs", D2, D3, "container green-orchestrator-1")
    assert [f.kind for f in got] == ["ok", "differs"]
    assert drift.verdict(got) == (False, "DRIFT: 1 of 2 checks on 1 host(s) differ from the stack")


def test_a_service_missing_on_the_host() -> None:
    got = drift.compare("web-0", intended(gateway=D1, rag_context=D2), status(gateway=running(D1, "gateway")))
    assert got == [Finding("web-0", "gateway", "ok", D1, D1), Finding("web-0", "rag-context", "missing", D2, None)]


def test_an_extra_service_running() -> None:
    got = drift.compare("web-0", intended(gateway=D1),
                        status(gateway=running(D1, "gateway"), debug_shell=running(D3, "debug-shell")))
    assert got == [Finding("web-0", "debug-shell", "extra", None, D3), Finding("web-0", "gateway", "ok", D1, D1)]


def test_extra_container_started_from_a_tag_shows_the_tag() -> None:
    extra = {"container": "x", "state": "running", "health": None, "image": "busybox:latest"}
    got = drift.compare("web-0", intended(), status(current="rel-7", shell=extra))
    assert got == [Finding("web-0", "shell", "extra", None, "busybox:latest")]


def test_stopped_or_unhealthy_container_on_the_right_digest() -> None:
    got = drift.compare("web-0", intended(gateway=D1, cicd=D2),
                        status(gateway=running(D1, "gateway", state="exited", health=None),
                               cicd=running(D2, "cicd", health="unhealthy")))
    assert got == [Finding("web-0", "cicd", "stopped", D2, D2, "health unhealthy"),
                   Finding("web-0", "gateway", "stopped", D1, D1, "state exited")]


def test_running_without_healthcheck_is_ok() -> None:
    got = drift.compare("web-0", intended(gateway=D1), status(gateway=running(D1, "gateway", health=None)))
    assert got == [Finding("web-0", "gateway", "ok", D1, D1)]


def test_host_on_another_release_pointer() -> None:
    got = drift.compare("web-1", intended(gateway=D1), status(current="rel-6", gateway=running(D1, "gateway")))
    assert got[0] == Finding("web-1", "(release)", "release", "rel-7", "rel-6",
                             "the host's current release is not the stack's")


def test_host_without_any_release() -> None:
    got = drift.compare("web-1", intended(gateway=D1), {"current": None, "services": {}})
    assert got == [Finding("web-1", "(release)", "release", "rel-7", "none",
                           "the host's current release is not the stack's"),
                   Finding("web-1", "gateway", "missing", D1, None)]


def test_unreadable_status() -> None:
    got = drift.compare("web-0", intended(gateway=D1),
                        {"current": "rel-7", "services": {}, "error": "cannot read containers: boom"})
    assert got == [Finding("web-0", "*", "unreadable", None, None, "cannot read containers: boom")]


def test_table_is_readable_and_problems_come_first() -> None:
    findings = [Finding("web-0", "gateway", "ok", D1, D1),
                Finding("web-0", "orchestrator", "differs", D2, D3, "container green-orchestrator-1")]
    assert drift.render_table(findings) == (
        "HOST   SERVICE       STATE           INTENDED              RUNNING               SIGNATURE  DETAIL\n"
        "web-0  orchestrator  DIGEST DIFFERS  sha256:222222222222…  sha256:333333333333…  -          "
        "container green-orchestrator-1\n"
        "web-0  gateway       ok              sha256:111111111111…  sha256:111111111111…  -"
    )
    assert drift.render_table(findings, only_problems=True).count("\n") == 1


def test_markdown_summary() -> None:
    md = drift.render_markdown([Finding("web-0", "cicd", "missing", D2, None)])
    assert md == ("### Drift: 1 finding(s)\n\n| host | service | state | intended | running | signature | detail |\n"
                  "|---|---|---|---|---|---|---|\n"
                  "| web-0 | cicd | NOT RUNNING (no container) | `sha256:222222222222…` | `-` | - |  |\n")


def test_digest_of() -> None:
    assert drift.digest_of(f"r/x@{D1}") == D1
    assert drift.digest_of("r/x:tag") is None
    assert drift.digest_of(None) is None


APP_TIER, DATA_TIER = ["gateway", "orchestrator"], ["state-persistence"]


def tiered(declared: list[str] | None, **services: dict[str, Any]) -> dict[str, Any]:
    return {"current": "rel-7", "services": {k.replace("_", "-"): v for k, v in services.items()},
            "declared": declared}


def test_a_color_is_compared_with_the_app_tier_and_the_data_project_with_the_data_tier() -> None:
    """The stack's release pins every service; a color's release declares the app tier only and `data` the data
    tier only (each tier's own compose file): neither is missing the other tier's services."""
    release = intended(gateway=D1, orchestrator=D2, state_persistence=D3)
    color = drift.compare("green", release, tiered(APP_TIER, gateway=running(D1, "gateway"),
                                                   orchestrator=running(D2, "orchestrator")))
    assert color == [Finding("green", "gateway", "ok", D1, D1), Finding("green", "orchestrator", "ok", D2, D2)]
    data = drift.compare("data", release, tiered(DATA_TIER, state_persistence=running(D3, "state-persistence")))
    assert data == [Finding("data", "state-persistence", "ok", D3, D3)]


def test_within_its_tier_a_project_still_reports_missing_and_extra() -> None:
    release = intended(gateway=D1, orchestrator=D2, state_persistence=D3)
    got = drift.compare("green", release, tiered(APP_TIER, gateway=running(D1, "gateway"),
                                                 state_persistence=running(D3, "state-persistence")))
    assert got == [Finding("green", "gateway", "ok", D1, D1), Finding("green", "orchestrator", "missing", D2, None),
                   Finding("green", "state-persistence", "extra", None, D3)]


def test_a_host_that_does_not_say_what_its_release_declares_is_compared_with_everything() -> None:
    release = intended(gateway=D1, state_persistence=D3)
    got = drift.compare("web-0", release, tiered(None, gateway=running(D1, "gateway")))
    assert got == [Finding("web-0", "gateway", "ok", D1, D1),
                   Finding("web-0", "state-persistence", "missing", D3, None)]
    assert drift.scope({"a": "x", "b": "y"}, ["b", "c"]) == {"b": "y"}


def signed(svc: dict[str, Any], verified: bool, detail: str) -> dict[str, Any]:
    return {**svc, "signature": {"verified": verified, "detail": detail}}


def test_a_running_digest_whose_signature_fails_is_drift_and_each_row_says_its_signature() -> None:
    """Rule: the host checked each running digest against the release's keys; a digest that matches the stack but
    does not verify (its signature deleted, the key rotated away) is a finding. Risk: drift that says clean while
    a host runs bytes nobody trusted."""
    status = {"current": "rel-7", "services": {
        "gateway": signed(running(D1, "gateway"), True, "signed"),
        "orchestrator": signed(running(D2, "orchestrator"), False, "unsigned: the registry holds no signature for "
                                                                   "this digest")}}
    got = drift.compare("web-0", intended(gateway=D1, orchestrator=D2), status)
    assert got == [Finding("web-0", "gateway", "ok", D1, D1, signature="verified"),
                   Finding("web-0", "orchestrator", "unsigned", D2, D2,
                           "unsigned: the registry holds no signature for this digest", "FAILS")]
    assert drift.render_table(got).splitlines()[1].split()[:6] == [
        "web-0", "orchestrator", "SIGNATURE", "FAILS", "sha256:222222222222…", "sha256:222222222222…"]
    assert drift.verdict(got) == (False, "DRIFT: 1 of 2 checks on 1 host(s) differ from the stack")


def test_status_says_how_many_signatures_verify_and_names_each_that_fails() -> None:
    services = {"gateway": signed(running(D1, "gateway"), True, "signed"),
                "orchestrator": signed(running(D2, "orchestrator"), False, "signed by another key, or the "
                                                                           "signature is not of this digest"),
                "cicd": running(D3, "cicd")}  # no digest checked: not counted
    assert drift.signature_line("web-0", services) == (
        "host web-0: signatures 1/2 verified",
        ["host web-0: orchestrator's signature FAILS: signed by another key, or the signature is not of this digest"])
    assert drift.signature_line("web-0", {"cicd": running(D3, "cicd")}) == (None, [])
