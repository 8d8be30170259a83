"""(e) three releases under MCP tool calls through haproxy, each made two ways on the real Pulumi engine:

* ours:     `python -m ops.cli release --stack local --yes`: the idle color, its validation gate, the promotion,
            the bake window's analysis and, when it fails, the instant flip back;
* in place: `pulumi up --stack local` with `devtools:release: build` while green (the local stack's own color) is
            live: the new images go into the live color, the host agent validates and restores on a failure.

The releases: a good one (a comment in code-review's service.conf), one bad under traffic only (gateway-mcp with
DEVTOOLS_BROKEN=errors: every second tools/call answers 500, health and validation pass) and one failing its
validation (gateway-mcp with DEVTOOLS_BROKEN=unhealthy). The stacks live in a workspace of their own (a copy of the
project, a file backend, both under a temporary directory in $BENCH_STATE, bench/workspace.py); their colors are
the stand-in's compose projects green and blue and haproxy, which `make up` uses too. At the end each project goes
back to the release it ran before when the host still keeps it, and haproxy serves green.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import common as c
from bench import release_flow_table as view
from bench.load import Load
from bench.workspace import Workspace, WorkspaceError, new_workspace
from standin import lbctl, localenv

MAX_RATE = 20.0  # the example gateway forks a shell (and awk) per tools/call: more measures the machine
MAX_LOAD_S = 900.0  # each load's bound: a release through the engine takes minutes, not --seconds
LEAD_S, TAIL_S = 2.0, 2.0
PROJECTS = ("data", *lbctl.COLORS)
KEEP_RELEASES = "12"  # so that the releases the projects ran before the bench are still there to go back to
TOOL_CALL = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
    "name": "review_code", "arguments": {"task": "bench (e): review under release"}}}).encode()


def require_tools() -> None:
    """The Pulumi toolchain and the BuildKit builder, built and ready (`make pulumi-toolchain builder`)."""
    for script, target in (("pulumi-toolchain.sh", "pulumi-toolchain"), ("buildkit-local.sh", "builder")):
        proc = c.run(["bash", str(c.ROOT / "scripts" / script), "status"], 120, f"{script} status", check=False)
        if proc.returncode != 0:
            raise c.BenchError(f"(e) needs the Pulumi toolchain and the BuildKit builder: run `make pulumi-toolchain "
                               f"builder` (scripts/{script} status says `make {target}` is missing):\n"
                               f"{c.tail(proc.stdout, 8)}")


@dataclass
class Stacks:
    ws: Workspace
    env: localenv.LocalEnv
    tmp: Path
    rate: float
    window_s: float = 0.0

    def pulumi(self, *args: str, stack: str, timeout: float = 300) -> str:
        proc = self.ws.pulumi(*args, stack=stack, timeout=timeout)
        if proc.returncode != 0:
            raise c.BenchError(f"(e) pulumi {' '.join(args[:2])} --stack {stack}: exit {proc.returncode}\n"
                               f"{c.tail(proc.stdout)}\n{c.tail(proc.stderr)}")
        return proc.stdout

    def configure(self, stack: str, **values: str) -> None:
        for key, value in values.items():
            self.pulumi("config", "set", f"devtools:{key}", value, stack=stack)

    def outputs(self, stack: str = "local") -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.pulumi("stack", "output", "--json", stack=stack))
        return data

    def app(self, name: str, scenario: str | None) -> str:
        """A copy of the example app with the scenario's line appended to its service's service.conf (a new digest
        for that service alone), set as the local stack's appRoot under a new release id; returns the id."""
        app = self.tmp / "apps" / name
        shutil.copytree(c.ROOT / "examples" / "app", app, symlinks=True)
        if scenario is not None:
            service, line, _ = view.SCENARIOS[scenario]
            with open(app / "services" / service / "service.conf", "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        rid = f"e-{name}-{time.strftime('%H%M%S')}"
        self.configure("local", appRoot=str(app), releaseId=rid)
        return rid

    def serving(self) -> list[str]:
        return lbctl.serving(self.env.lb_socket)

    def audit_mark(self) -> dict[str, int]:
        return {p: len(self._audit(p)) for p in lbctl.COLORS}

    def _audit(self, project: str) -> list[str]:
        path = self.env.host_root / project / "audit.jsonl"  # the stand-in host shares this filesystem
        return path.read_text().splitlines() if path.exists() else []

    def host_check(self, mark: dict[str, int], release: str) -> dict[str, Any]:
        """What the host did with `release` since `mark` (the project it went to, its validation and timings)."""
        for project in lbctl.COLORS:
            events = [json.loads(line) for line in self._audit(project)[mark[project]:] if line.strip()]
            if any(e.get("release") == release for e in events):
                jobs = {str(e.get("job")) for e in events if e.get("job")}
                logs = {}
                for job in jobs:
                    path = self.env.host_root / project / "jobs" / f"{job}.log"
                    logs[job] = path.read_text(errors="replace") if path.exists() else ""
                return {"project": project, **view.host_check(events, logs, release)}
        return {"project": None, "result": None}


def setup(env: localenv.LocalEnv, tmp: Path, rate: float) -> Stacks:
    """Like the engine tests' fixture: both local stacks in a workspace of their own, the first release on both."""
    c.run(["bash", str(c.ROOT / "scripts" / "buildkit-local.sh"), "up"], 1800, "buildkit-local.sh up")
    c.run([c.PY, "-m", "ops.build", "--vendor-only"], 120, "ops.build --vendor-only")
    try:
        ws = new_workspace(tmp)
    except WorkspaceError as exc:
        raise c.BenchError(f"(e) {exc}") from exc
    s = Stacks(ws, env, tmp, rate)
    for stack in ("local", "local-blue"):
        s.pulumi("stack", "init", stack=stack)
        s.configure(stack, keepReleases=KEEP_RELEASES)
    s.window_s = float(s.pulumi("config", "get", "devtools:analysisInterval", stack="local")) * float(
        s.pulumi("config", "get", "devtools:analysisCount", stack="local"))
    s.app("first", None)
    for stack in ("local", "local-blue"):
        c.say(f"(e) first release on stack {stack} (pulumi up)")
        s.pulumi("up", "--yes", stack=stack, timeout=900)
    if s.serving() != ["green"]:
        raise c.BenchError(f"(e) after the first release haproxy serves {s.serving()}, not green")
    return s


def _measured(s: Stacks, release: str, run: Callable[[], tuple[int, float, str]]
              ) -> tuple[dict[str, Any], str]:
    """Run `run()` (its exit code, seconds watched after it, its output) under the load; the row's common part and
    the whole output."""
    mark = s.audit_mark()
    with Load(f"{s.env.lb_url}/mcp", s.rate, MAX_LOAD_S, body=TOOL_CALL) as load:
        time.sleep(LEAD_S)
        t0 = time.time()
        code, watched, output = run()
        t1 = time.time()
        time.sleep(TAIL_S)
    result = load.result().to_json()
    return {"release": release, "exit": code, "started_at": t0, "seconds": round(t1 - t0 - watched, 2),
            "watched_s": watched, "load": result, "load_covered": result["seconds"] < MAX_LOAD_S - 1,
            "validation": s.host_check(mark, release), "output_tail": c.tail(output, 25)}, output


def ours(s: Stacks, scenario: str) -> dict[str, Any]:
    rid = s.app(f"ours-{scenario}", scenario)
    known = {r.get("run") for r in s.outputs().get("releaseRuns") or []}
    argv = [c.PY, "-m", "ops.cli", "release", "--yes", "--collect", str(s.tmp / "diagnostics"), "--stack", "local",
            "--cwd", str(s.ws.dir)]

    def run() -> tuple[int, float, str]:
        proc = c.run(argv, 1500, "ops.cli release", env=s.ws.env, check=False)
        return proc.returncode, 0.0, proc.stdout + proc.stderr

    row, output = _measured(s, rid, run)
    runs = s.outputs().get("releaseRuns") or []
    record: dict[str, Any] = next((r for r in reversed(runs) if r.get("run") not in known), {})
    analysis = record.get("analysis") or {}
    post = analysis.get("post") or {}
    outcome = record.get("outcome") or f"exit {row['exit']}, no run record"
    reverted, read_from = view.flipped_back(analysis, output)
    return {**row, "way": "ours", "bad": scenario != "good", "outcome": outcome, "run": record.get("run"),
            "never_on_traffic": outcome == "never promoted",
            "origin_at": analysis.get("promote_started_at") or analysis.get("promoted_at"),
            "origin": "promote_started_at" if analysis.get("promote_started_at") else "promoted_at",
            "detected_at": post.get("first_failure_at") if post.get("phase") == "failed" else None,
            "reverted_at": reverted, "reverted_from": read_from, "record": record}


def in_place(s: Stacks, scenario: str) -> dict[str, Any]:
    rid = s.app(f"inplace-{scenario}", scenario)
    bad = scenario != "good"

    def run() -> tuple[int, float, str]:
        proc = s.ws.pulumi("up", "--yes", stack="local", timeout=900)
        watched = 0.0
        if proc.returncode == 0 and bad:  # nothing will notice: users meet it for as long as ours would bake
            time.sleep(s.window_s)
            watched = s.window_s
        return proc.returncode, watched, proc.stdout + proc.stderr

    row, _ = _measured(s, rid, run)
    check = row["validation"]
    failed = check.get("result") == "failed"
    outcome = ("applied" if row["exit"] == 0 else "restored by the host" if failed
               else f"update failed (exit {row['exit']})")
    origin = check.get("switch_at")
    last_failure = row["load"]["last_failure_s"]
    reverted = None
    if failed:  # traffic is back on a good release once requests stop failing (haproxy's checks rise again)
        reverted = (row["load"]["started_at"] + last_failure if last_failure is not None
                    else check.get("restored_at"))
    return {**row, "way": "naive", "bad": bad, "outcome": outcome, "never_on_traffic": False,
            "origin_at": origin if origin is not None else row["started_at"],
            "origin": "container switch" if origin is not None else "update start",
            "detected_at": check.get("failed_at") if failed else None, "reverted_at": reverted}


def back_to_green_in_place(s: Stacks) -> None:
    """From where ours left the stacks (traffic on blue, green idle) to the in-place starting point: green runs an
    unchanged release of the app, built by the local stack itself, and serves."""
    s.ws.pulumi("config", "rm", "devtools:buildAlways", stack="local")  # absent already: fine
    s.configure("local", release="build", liveColor="green")
    s.app("inplace-base", None)
    c.say("(e) green back on an unchanged release and live (pulumi up --stack local)")
    s.pulumi("up", "--yes", stack="local", timeout=900)
    if s.serving() != ["green"]:
        raise c.BenchError(f"(e) haproxy serves {s.serving()} after moving back to green")


def run(rate: float, quiet_s: float) -> dict[str, Any]:
    require_tools()
    env = localenv.load()
    rate = min(rate, MAX_RATE)
    before = {p: c.current_release(env, p) for p in PROJECTS}
    c.STATE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="e-", dir=c.STATE))
    result: dict[str, Any] = {"rate": rate, "lb": env.lb_url, "window_s": None, "workspace": str(tmp),
                              "before": before, "machine_before": {}, "rows": {k: {} for k in view.SCENARIOS}}
    done = False
    try:
        s = setup(env, tmp, rate)
        result["window_s"] = s.window_s
        for scenario in view.SCENARIOS:
            result["machine_before"][f"ours {scenario}"] = c.await_quiet(quiet_s)
            c.say(f"(e) ours: {scenario} release (ops.cli release) under {rate:g} tool calls/s")
            result["rows"][scenario]["ours"] = ours(s, scenario)
        back_to_green_in_place(s)
        for scenario in view.SCENARIOS:
            if scenario == "unhealthy":  # the errors release runs on green: a good one first, unmeasured
                s.app("inplace-good-again", "good")
                s.pulumi("up", "--yes", stack="local", timeout=900)
            result["machine_before"][f"in place {scenario}"] = c.await_quiet(quiet_s)
            c.say(f"(e) in place: {scenario} release (pulumi up on live green) under {rate:g} tool calls/s")
            result["rows"][scenario]["naive"] = in_place(s, scenario)
        done = True
    except c.BenchError as exc:
        raise c.BenchError(str(exc), partial=result) from exc
    finally:
        result["left"] = leave(env, before)
        if done:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def leave(env: localenv.LocalEnv, before: dict[str, str | None]) -> list[str]:
    """Each project on the release it ran before where the host keeps it, haproxy on green; what could not be."""
    missed = c.put_back(env, before, "(e)")
    if lbctl.serving(env.lb_socket) != ["green"]:
        c.say("(e) haproxy back on green (scripts/local-env.sh flip green)")
        proc = c.run(["bash", str(c.ROOT / "scripts" / "local-env.sh"), "flip", "green"], 120, "flip green",
                     check=False)
        if proc.returncode != 0:
            missed.append(f"haproxy not moved back to green: {c.tail(proc.stderr, 3)}")
    for line in missed:
        c.say(f"(e) {line}: `make up` (and `make up COLOR=blue`) applies the local stacks' releases again")
    return missed
