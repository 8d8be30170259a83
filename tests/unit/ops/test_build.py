"""ops.build: the exact commands it runs, how it reads digests and the compose files, and what it writes."""

from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from components.catalog import BuildSpec, image_repo
from ops import build
from ops.build import BuildError
from tests import compose_services

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
SPEC = BuildSpec("orchestrator", Path("/src/app"), Path("/src/app/Dockerfile"), (("SERVICE", "orchestrator"),))
SERVICES = ["cicd", "orchestrator"]


def test_build_argv_is_exact() -> None:
    assert build.build_argv(SPEC, "127.0.0.1:5055/devtools/orchestrator:abc1234") == [
        "docker", "build", "-q", "--force-rm", "-t", "127.0.0.1:5055/devtools/orchestrator:abc1234",
        "--build-arg", "SERVICE=orchestrator", "-f", "/src/app/Dockerfile", "/src/app"]


def test_build_argv_passes_the_broken_variant() -> None:
    assert build.build_argv(SPEC, "r/devtools/orchestrator:t-broken-slow", "slow") == [
        "docker", "build", "-q", "--force-rm", "-t", "r/devtools/orchestrator:t-broken-slow",
        "--build-arg", "SERVICE=orchestrator", "--build-arg", "BROKEN=slow",
        "-f", "/src/app/Dockerfile", "/src/app"]


def test_push_argv_is_exact() -> None:
    ref = "127.0.0.1:5055/devtools/cicd:abc1234"
    assert build.push_argv(ref) == ["docker", "push", "-q", ref]


def test_image_names() -> None:
    assert image_repo("127.0.0.1:5055", "devtools", "cicd") == "127.0.0.1:5055/devtools/cicd"
    assert image_repo("127.0.0.1:5055/", "", "cicd") == "127.0.0.1:5055/cicd"
    assert build.image_tag("abc1234", None) == "abc1234"
    assert build.image_tag("abc1234", "crash") == "abc1234-broken-crash"


def test_pick_digest_takes_the_entry_of_the_pushed_repository() -> None:
    digests = json.dumps([f"other:5000/devtools/cicd@{OTHER}", f"127.0.0.1:5055/devtools/cicd@{DIGEST}",
                          f"127.0.0.1:5055/devtools/cicd-old@{OTHER}"])
    assert build.pick_digest(digests, "127.0.0.1:5055/devtools/cicd") == f"127.0.0.1:5055/devtools/cicd@{DIGEST}"


@pytest.mark.parametrize("output", ["[]", "null", json.dumps(["r/devtools/cicd@sha256:short"]),
                                    json.dumps([f"r/devtools/other@{DIGEST}"])])
def test_pick_digest_without_a_digest_for_the_repository_fails(output: str) -> None:
    with pytest.raises(BuildError, match=r"no digest for r/devtools/cicd among RepoDigests"):
        build.pick_digest(output, "r/devtools/cicd")


def test_pick_digest_names_unreadable_output() -> None:
    with pytest.raises(BuildError, match=r"unreadable RepoDigests '<no value>'"):
        build.pick_digest("<no value>\n", "r/devtools/cicd")


def test_pins_document_shape() -> None:
    built_at = datetime(2026, 1, 2, 5, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    images = {"orchestrator": f"r/devtools/orchestrator@{DIGEST}", "cicd": f"r/devtools/cicd@{OTHER}"}
    document = build.pins_document("abc1234", images, built_at, None)
    assert json.dumps(document) == (
        '{"release": "abc1234", "images": {"cicd": "r/devtools/cicd@' + OTHER + '", '
        '"orchestrator": "r/devtools/orchestrator@' + DIGEST + '"}, '
        '"built_at": "2026-01-02T03:04:05+00:00", "commit": null}')
    assert build.pins_document("t", {}, datetime(2026, 1, 2, tzinfo=UTC), "f" * 40)["commit"] == "f" * 40


def test_parse_broken_reads_service_and_variant() -> None:
    assert build.parse_broken(["cicd=crash", "orchestrator=unhealthy"], SERVICES) == {
        "cicd": "crash", "orchestrator": "unhealthy"}
    assert build.parse_broken([], SERVICES) == {}


@pytest.mark.parametrize(("values", "message"), [
    (["cicd"], "--broken 'cicd': expected SERVICE=VARIANT"),
    (["=slow"], "--broken '=slow': expected SERVICE=VARIANT"),
    (["cicd="], "--broken 'cicd=': expected SERVICE=VARIANT"),
    (["cicd=flaky"], "--broken 'cicd=flaky': unknown variant 'flaky' "
                     "(one of crash, errors, latency, leak, migrate, notrace, slow, unhealthy)"),
    (["cicd=none"], "--broken 'cicd=none': unknown variant 'none' "
                    "(one of crash, errors, latency, leak, migrate, notrace, slow, unhealthy)"),
    (["gateway=slow"], "--broken 'gateway=slow': 'gateway' is not a service being built (cicd, orchestrator)"),
    (["cicd=slow", "cicd=crash"], "--broken 'cicd=crash': cicd is already broken as 'slow'"),
])
def test_parse_broken_errors_name_the_bad_value(values: list[str], message: str) -> None:
    with pytest.raises(BuildError) as caught:
        build.parse_broken(values, SERVICES)
    assert str(caught.value) == message



def test_the_dockerfile_accepts_exactly_the_broken_variants() -> None:
    """ops.build refuses a variant the Dockerfile would refuse, and offers every one it accepts (its RUN check)."""
    dockerfile = (Path(__file__).resolve().parents[3] / "examples" / "app" / "Dockerfile").read_text()
    accepted = dockerfile.split('case \\"$BROKEN\\" in ', 1)[1].split(")", 1)[0].split("|")
    assert sorted(accepted) == sorted(["none", *build.BROKEN_VARIANTS])

def test_parse_services() -> None:
    assert build.parse_services(None, SERVICES) == SERVICES
    assert build.parse_services(" orchestrator,cicd,orchestrator ", SERVICES) == ["orchestrator", "cicd"]
    with pytest.raises(BuildError) as caught:
        build.parse_services("cicd,nope", SERVICES)
    assert str(caught.value) == "--services 'cicd,nope': unknown service nope (known: cicd, orchestrator)"
    with pytest.raises(BuildError, match=r"unknown service \(none given\)"):
        build.parse_services(",", SERVICES)


def test_the_compose_files_build_every_service_from_the_example_app() -> None:
    """The direct path reads `build:` with the Pulumi program's reader; APP_ROOT moves every context."""
    specs = build.build_specs({})
    app = build.ROOT / "examples" / "app"
    assert list(specs) == list(compose_services.SERVICES)
    for name, spec in specs.items():
        assert spec == BuildSpec(name, app, app / "Dockerfile", (("SERVICE", name),))
        assert (app / "services" / name / "service.conf").is_file()
    moved = build.build_specs({"APP_ROOT": "/srv/app"})
    assert {s.context for s in moved.values()} == {Path("/srv/app")}


def test_is_dynamic_elf(tmp_path: Path) -> None:
    text = tmp_path / "script"
    text.write_text("#!/bin/sh\n")
    assert not build.is_dynamic_elf(text)
    assert build.is_dynamic_elf(Path(sys.executable).resolve())
    busybox = Path("/usr/bin/busybox")
    if busybox.is_file():
        assert not build.is_dynamic_elf(busybox)


def test_ensure_vendor_copies_busybox_only_when_wanted(tmp_path: Path) -> None:
    source = tmp_path / "busybox-src"
    source.write_bytes(b"static busybox stand-in")
    context = tmp_path / "app"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY vendor/busybox /bin/busybox\n")
    spec = BuildSpec("x", context, context / "Dockerfile", ())
    build.ensure_vendor(spec, source)
    assert (context / "vendor" / "busybox").read_bytes() == b"static busybox stand-in"
    assert sorted(p.name for p in (context / "vendor").iterdir()) == ["busybox"]

    other = tmp_path / "other"
    other.mkdir()
    (other / "Dockerfile").write_text("FROM scratch\n")
    build.ensure_vendor(BuildSpec("y", other, other / "Dockerfile", ()), source)
    assert not (other / "vendor").exists()


def test_ensure_vendor_refuses_a_missing_or_dynamic_busybox(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("COPY vendor/busybox /bin/busybox\n")
    spec = BuildSpec("x", tmp_path, tmp_path / "Dockerfile", ())
    with pytest.raises(BuildError, match=r"does not exist: apt-get install busybox-static"):
        build.ensure_vendor(spec, tmp_path / "missing")
    dynamic = tmp_path / "python"
    shutil.copy(Path(sys.executable).resolve(), dynamic)
    with pytest.raises(BuildError, match=r"python is dynamically linked"):
        build.ensure_vendor(spec, dynamic)
    assert not (tmp_path / "vendor" / "busybox").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--tag", "bad tag"], "ops.build: --tag: release id 'bad tag' must be 1-64 letters, digits"),
    (["--tag", "t" * 65], "ops.build: --tag: release id '" + "t" * 65 + "' must be 1-64"),
    ([], "ops.build: --tag is required: name the release, e.g. --tag bench-1"),
    (["--tag", "8517fc2"], "ops.build: --tag '8517fc2' looks like a commit id, which names the Pulumi program's"),
    (["--tag", "8517fc2-dirty-0a1b2c3d"], "ops.build: --tag '8517fc2-dirty-0a1b2c3d' looks like a commit id"),
    (["--tag", "8517fc2-anything"], "ops.build: --tag '8517fc2-anything' looks like a commit id"),
    (["--tag", "t", "--broken", "cicd:slow"], "ops.build: --broken 'cicd:slow': expected SERVICE=VARIANT"),
    (["--tag", "t", "--services", "cicd,web"], "ops.build: --services 'cicd,web': unknown service web"),
    (["--tag", "t", "--parallel", "0"], "ops.build: --parallel 0: must be at least 1"),
])
def test_main_rejects_bad_options_before_building(argv: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert build.main(["--registry", "127.0.0.1:9", *argv]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(message)
    assert "building" not in captured.err
    assert captured.out == ""


def test_vendor_only_prepares_every_context_and_builds_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`pulumi up --stack local` builds examples/app with BuildKit: the static busybox must be in the context
    first, and preparing it must not build or push anything."""
    context = tmp_path / "app"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY vendor/busybox /bin/busybox\n")
    source = tmp_path / "busybox"
    source.write_bytes(b"#!static stand-in\n")
    spec = BuildSpec("gateway-mcp", context, context / "Dockerfile", (("SERVICE", "gateway-mcp"),))
    monkeypatch.setattr(build, "build_specs", lambda _environ: {"gateway-mcp": spec})
    monkeypatch.setattr(build, "build_all", lambda *_a: pytest.fail("--vendor-only must not build"))
    calls: list[str] = []
    real = build.ensure_vendor
    def vendor(spec: BuildSpec) -> None:
        calls.append(spec.service)
        real(spec, source)

    monkeypatch.setattr(build, "ensure_vendor", vendor)
    assert build.main(["--vendor-only"]) == 0
    assert calls == ["gateway-mcp"]
    assert (context / "vendor" / "busybox").read_bytes() == b"#!static stand-in\n"
    assert "build contexts ready (1 services)" in capsys.readouterr().err
