"""Validate a running release: health, MCP tool discovery, end-to-end probes, (optionally) Prometheus, and
(optionally, after the probes) the agents' trace coverage in Langfuse.

    python -m agent.validate --config <release>/resolved.json --json report.json --deadline 120

Every check runs concurrently with a per-attempt timeout and exponential backoff, all under one deadline.
Exit status: 0 when every check passed, 1 when a check failed, 2 for bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.validate.catalog import HEALTH, Catalog, CatalogError, load_catalog, resolve_compose
from agent.validate.report import Report, render_color, render_markdown, render_text, to_json

EXIT_PASSED, EXIT_FAILED, EXIT_INPUT = 0, 1, 2


def save_hint(path: Path) -> str:
    return (
        "save it with `docker compose --file compose/docker-compose.yml --env-file release.env "
        f"config --format json > {path}`"
    )


class InputError(Exception):
    """Bad input: the message names what is wrong and how to fix it."""


@dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    timeout: float = 5.0
    deadline: float = 60.0
    prometheus: str | None = None
    prom_selector: str = ""
    max_error_rate: float = 0.01
    labels: Mapping[str, str] = field(default_factory=dict)
    backoff_first_s: float = 0.25
    backoff_cap_s: float = 2.0
    langfuse_host: str | None = None
    secrets_file: str | None = None
    trace_deadline: float = 30.0
    trace_min: float = 0.9


async def validate(catalog: Catalog, options: Options) -> Report:
    """Run every phase's checks concurrently under one deadline and collect the report."""
    try:
        import httpx  # noqa: PLC0415 - imported on use: `--help` and bad-input exits stay fast
    except ImportError as exc:
        raise InputError("httpx is not installed: pip install -r agent/requirements.txt") from exc
    from agent.validate import checks, http, mcp, prometheus, traces  # noqa: PLC0415

    probes_started = datetime.now(UTC)
    started_at = probes_started.strftime("%Y-%m-%dT%H:%M:%SZ")
    started = time.monotonic()
    # Services speak plain HTTP; a TLS context (slow to build) is made only for an https Prometheus or Langfuse.
    tls = any(url and url.startswith("https://") for url in (options.prometheus, options.langfuse_host))
    async with httpx.AsyncClient(timeout=options.timeout, trust_env=False, verify=tls) as client:
        plan = [http.health_check(client, options.host, s) for s in catalog.services]
        plan += [mcp.mcp_check(client, options.host, s) for s in catalog.mcp_services]
        plan += [http.e2e_check(client, options.host, s) for s in catalog.e2e_services]
        if options.prometheus:
            expected = len(catalog.metrics_services)
            plan.append(prometheus.up_check(client, options.prometheus, options.prom_selector, expected))
            plan.append(
                prometheus.error_rate_check(client, options.prometheus, options.prom_selector, options.max_error_rate)
            )
        backoff = checks.Backoff(first_s=options.backoff_first_s, cap_s=options.backoff_cap_s)
        results = await checks.run_checks(plan, timeout=options.timeout, deadline_s=options.deadline, backoff=backoff)
        section = None
        if options.langfuse_host:
            agents = [s.name for s in catalog.e2e_services]
            check, coverage = await traces.coverage_check(
                client, options.langfuse_host, agents, probes_started, secrets_file=options.secrets_file,
                minimum=options.trace_min, deadline_s=options.trace_deadline, timeout=options.timeout)
            results.append(check)
            section = coverage.section()
    return Report(
        started_at=started_at,
        duration_s=time.monotonic() - started,
        checks=tuple(results),
        labels=dict(options.labels),
        project=catalog.project,
        traces=section,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agent.validate",
        description="Validate a running release against the checks its compose file declares as labels.",
        epilog="Exit status: 0 every check passed, 1 a check failed, 2 bad input.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    add = source.add_argument
    add("--config", metavar="RESOLVED_JSON", help="a saved `docker compose config --format json`")
    add("--compose", metavar="FILE", action="append", help="a compose file to resolve (repeatable)")
    add = parser.add_argument
    add("--env-file", metavar="FILE", help="with --compose: the env file of digest pins (release.env)")
    add("--project-name", metavar="NAME", help="with --compose: the compose project name")
    add("--profile", metavar="NAME", action="append", default=[], help="with --compose: a compose profile (repeatable)")
    add("--host", default="127.0.0.1", help="address of the published ports (default %(default)s)")
    add("--timeout", metavar="SECONDS", type=float, default=5.0, help="seconds per attempt (default %(default)s)")
    add("--deadline", metavar="SECONDS", type=float, default=60.0, help="seconds for everything (default %(default)s)")
    add("--json", metavar="PATH", help="write the JSON report here")
    add("--no-color", action="store_true", help="plain output (colour is used only on a TTY, never with NO_COLOR)")
    add("--prometheus", metavar="URL", help="enable the Prometheus phase, e.g. http://127.0.0.1:9390")
    add("--prom-selector", default="", metavar="MATCHERS", help="label matchers, e.g. 'color=\"green\"'")
    add("--max-error-rate", metavar="RATIO", type=float, default=0.01, help="highest 5xx ratio (default %(default)s)")
    add("--langfuse-host", metavar="URL", help="enable the trace phase after the probes, e.g. http://127.0.0.1:9392")
    add("--secrets-file", metavar="PATH", help="the project's secrets file: LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY")
    add("--trace-deadline", metavar="SECONDS", type=float, default=30.0,
        help="seconds the trace phase waits for every agent's trace (default %(default)s)")
    add("--trace-min", metavar="RATIO", type=float, default=0.9,
        help="lowest share of probed agents with a trace (default %(default)s)")
    add("--label", action="append", default=[], metavar="KEY=VALUE", help="recorded in the report (repeatable)")
    return parser


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--label {item!r}: expected KEY=VALUE, e.g. --label color=green")
        labels[key.strip()] = value
    return labels


def options_from(args: argparse.Namespace) -> Options:
    if args.config and (args.env_file or args.project_name or args.profile):
        raise InputError("--env-file, --project-name and --profile apply to --compose only, not --config")
    if args.timeout <= 0 or args.deadline <= 0:
        raise InputError("--timeout and --deadline must be positive numbers of seconds")
    if not 0 <= args.max_error_rate <= 1:
        raise InputError(f"--max-error-rate {args.max_error_rate:g}: give a ratio between 0 and 1, e.g. 0.01")
    if args.prometheus and not args.prometheus.startswith(("http://", "https://")):
        raise InputError(f"--prometheus {args.prometheus!r}: give a URL, e.g. http://127.0.0.1:9390")
    if args.prom_selector and not args.prometheus:
        raise InputError("--prom-selector needs --prometheus URL")
    if args.langfuse_host and not args.langfuse_host.startswith(("http://", "https://")):
        raise InputError(f"--langfuse-host {args.langfuse_host!r}: give a URL, e.g. http://127.0.0.1:9392")
    if not 0 <= args.trace_min <= 1:
        raise InputError(f"--trace-min {args.trace_min:g}: give a ratio between 0 and 1, e.g. 0.9")
    if args.trace_deadline <= 0:
        raise InputError("--trace-deadline must be a positive number of seconds")
    return Options(
        host=args.host,
        timeout=args.timeout,
        deadline=args.deadline,
        prometheus=args.prometheus,
        prom_selector=args.prom_selector,
        max_error_rate=args.max_error_rate,
        labels=parse_labels(args.label),
        langfuse_host=args.langfuse_host or None,
        secrets_file=args.secrets_file,
        trace_deadline=args.trace_deadline,
        trace_min=args.trace_min,
    )


def load_resolved(args: argparse.Namespace) -> dict[str, Any]:
    if args.compose:
        for f in args.compose:
            if not Path(f).is_file():
                raise InputError(f"--compose {f}: no such file; pass the path of a compose file")
        if args.env_file and not Path(args.env_file).is_file():
            raise InputError(f"--env-file {args.env_file}: no such file; pass the release's env file of pins")
        return resolve_compose(args.compose, args.env_file, args.project_name, args.profile)
    path = Path(args.config)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise InputError(f"--config {path}: no such file; {save_hint(path)}") from exc
    except OSError as exc:
        raise InputError(f"--config {path}: cannot read it ({exc.strerror})") from exc
    try:
        resolved = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--config {path}: not JSON ({exc}); {save_hint(path)}") from exc
    if not isinstance(resolved, dict):
        raise InputError(f"--config {path}: expected a JSON object; {save_hint(path)}")
    return resolved


def write_outputs(report: Report, json_path: str | None, environ: Mapping[str, str]) -> None:
    if json_path:
        target = Path(json_path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            partial.write_text(json.dumps(to_json(report), indent=2) + "\n")
            partial.replace(target)
        except OSError as exc:
            raise InputError(f"--json {target}: cannot write the report ({exc.strerror})") from exc
    summary = environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(render_markdown(report) + "\n")
        except OSError as exc:
            raise InputError(f"GITHUB_STEP_SUMMARY {summary}: cannot append ({exc.strerror})") from exc


def use_color(no_color: bool, environ: Mapping[str, str]) -> bool:
    return not no_color and not environ.get("NO_COLOR") and sys.stdout.isatty()


def _fail_input(exc: Exception) -> int:
    print(f"agent.validate: error: {exc}", file=sys.stderr)
    return EXIT_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        options = options_from(args)
        catalog = load_catalog(load_resolved(args))
        if not catalog.services:
            raise InputError(f"no service has a {HEALTH} label: nothing to validate")
        report = asyncio.run(validate(catalog, options))
    except (InputError, CatalogError) as exc:
        return _fail_input(exc)
    sys.stdout.write(render_color(report) if use_color(args.no_color, os.environ) else render_text(report))
    sys.stdout.flush()
    try:
        write_outputs(report, args.json, os.environ)
    except InputError as exc:
        return _fail_input(exc)
    return EXIT_PASSED if report.passed else EXIT_FAILED

