"""Host agent: the release engine that runs on each host (python3 standard library only).

    python -m agent.hostagent [--root /opt/devtools] --project green apply --bundle DIR
    python -m agent.hostagent --project green rollback [--to ID]
    python -m agent.hostagent --project green status | history | wait [JOB]
    python -m agent.hostagent --project green recover   # after a worker died: kill what it left, restore current
    python -m agent.hostagent --project green gate --release ID      # the Pulumi gate: validate, or restore
    python -m agent.hostagent --project green confirm --release ID   # a pool passed: a provisional release stays
    python -m agent.hostagent --project green secrets < secrets.env     # KEY=VALUE lines, stored 0600
    python -m agent.hostagent --project green registry-auth < config.json   # pull credentials → docker config 0600
    python -m agent.hostagent --project green stop      # compose down; volumes, images and releases kept
    python -m agent.hostagent --project data backup | backups | restore-backup ID | import-backup   # agent.backup_cli
    python -m agent.hostagent doctor [--json]           # python, the venv's pins, docker, compose v2 (no project)

`apply`, `rollback`, `recover`, `gate` and `confirm` run in a detached worker (own session, output to
jobs/<job>.log); the command you started only follows that log. If your SSH connection drops, the worker carries
on and the host ends with one whole release running: the new one validated, or the previous one restored. `wait`
re-attaches. If the worker itself dies (SIGKILL, the OOM killer), the follower says so within seconds (exit 4), and
the next job, or `recover`, kills the compose commands it left running and restores the recorded current release.
Exit codes: 0 done, 1 release failed and the previous one was restored, 2 bad input (nothing changed),
3 another rollout held the lock too long, 4 critical (restoring failed too, or the worker died).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from agent import backup_cli, doctor, registry_auth, release, secretfile
from agent import compose as cc
from agent import status as hoststatus
from agent.jobs import follow, latest_job, run_job, start_job
from agent.process import kill_leftovers, run_process
from agent.rollout import EXIT_CRITICAL, EXIT_FAILED, EXIT_LOCK, EXIT_OK
from agent.signing import COSIGN
from agent.steps import Options
from agent.store import LockTimeout, Store, describe_holder


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        wait_timeout=args.wait_timeout, pull_timeout=args.pull_timeout, migrate_timeout=args.migrate_timeout,
        validate=not args.no_validate,
        validate_deadline=args.validate_deadline,
        validate_args=tuple(args.validate_arg), keep=args.keep, lock_timeout=args.lock_timeout,
        confirm_within=args.confirm_within, cosign=args.cosign,
    )


# CLI ------------------------------------------------------------------------------------------------------
def rollout_opts(sp: argparse.ArgumentParser) -> None:
    """The options of every command that activates a release (apply, rollback, gate)."""
    sp.add_argument("--wait-timeout", type=int, default=180, help="seconds for compose up --wait")
    sp.add_argument("--pull-timeout", type=int, default=600, help="seconds compose pull may take")
    sp.add_argument("--migrate-timeout", type=int, default=300,
                    help="seconds each one-shot migration (a service's devtools.migrate label) may take")
    sp.add_argument("--validate-deadline", type=int, default=120, help="overall validation deadline (s)")
    sp.add_argument("--validate-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for agent.validate (repeatable), e.g. --validate-arg=--prometheus=URL")
    sp.add_argument("--no-validate", action="store_true", help="skip validation (recorded in the audit log)")
    sp.add_argument("--keep", type=int, default=5, help="release directories to keep (at least 2)")
    sp.add_argument("--lock-timeout", type=float, default=300, help="seconds to wait for another rollout")
    sp.add_argument("--detach", action="store_true", help="start the job and return; follow it with `wait`")
    sp.add_argument("--confirm-within", type=int, default=0, metavar="SECONDS",
                    help="a pool host's activation: provisional, the release before comes back unless `confirm` "
                    "arrives within SECONDS (default 0: final at once)")
    sp.add_argument("--cosign", default=COSIGN, metavar="PATH",
                    help=f"the cosign that verifies a release's image signatures (default {COSIGN})")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agent.hostagent", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path(os.environ.get("DEVTOOLS_HOST_ROOT", "/opt/devtools")),
                   help="state directory on the host (default /opt/devtools or $DEVTOOLS_HOST_ROOT)")
    p.add_argument("--project", help="compose project (one per color), e.g. green; required by every command "
                   "but doctor")
    sub = p.add_subparsers(dest="command", required=True)

    ap = sub.add_parser("apply", help="roll out a release bundle (release.json + compose files)")
    ap.add_argument("--bundle", type=Path, required=True, help="directory holding release.json and compose files")
    rollout_opts(ap)
    rp = sub.add_parser("rollback", help="bring back the previous release (or --to ID)")
    rp.add_argument("--to", dest="target", help="release id to restore (default: previous)")
    rollout_opts(rp)
    gp = sub.add_parser("gate", help="validate the running release (activating it again if the host went back) and "
                        "print one JSON summary line last; on failure restore the previous release (exit 1)")
    gp.add_argument("--release", required=True, help="the release the gate is about")
    gp.add_argument("--report", type=Path, help="where the report goes (default <project>/reports/gate-<id>.json)")
    rollout_opts(gp)
    cp = sub.add_parser("confirm", help="a pool's verdict: the provisional release stays (activated again if the "
                        "host already went back)")
    cp.add_argument("--release", required=True)
    cp.add_argument("--lock-timeout", type=float, default=300, help="seconds to wait for another rollout")
    cp.add_argument("--detach", action="store_true", help="start the job and return; follow it with `wait`")
    sp = sub.add_parser("status", help="JSON: current/previous release and what actually runs per service")
    sp.add_argument("--compact", action="store_true", help="one line of JSON")
    sp.add_argument("--cosign", default=COSIGN, metavar="PATH", help="the cosign that checks each running "
                    f"container's signature against the current release's keys (default {COSIGN})")
    hp = sub.add_parser("history", help="releases kept here and the audit trail of rollouts")
    hp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    hp.add_argument("--limit", type=int, default=20)
    wp = sub.add_parser("wait", help="follow a running or finished job (default: the latest)")
    wp.add_argument("job", nargs="?")
    rcp = sub.add_parser("recover", help="after a worker died: kill the processes it left running and restore the "
                         "recorded current release (every apply and rollback does this first)")
    rcp.add_argument("--lock-timeout", type=float, default=300, help="seconds to wait for another rollout")
    rcp.add_argument("--detach", action="store_true", help="start the job and return; follow it with `wait`")
    sub.add_parser("secrets", help="read KEY=VALUE lines from stdin into the project's 0600 secrets file")
    sub.add_parser("record", help="append a release run's record (JSON on stdin, from `ops.cli release`) to the "
                   "audit as release.run")
    sub.add_parser("registry-auth", help="read registry credentials (docker config JSON) from stdin into the "
                   "docker config the pulls use (0600)")
    stp = sub.add_parser("stop", help="stop the running release (compose down; volumes, images and releases kept)")
    stp.add_argument("--lock-timeout", type=float, default=300, help="seconds to wait for another rollout")
    stp.add_argument("--stop-timeout", type=int, default=30, help="seconds each container gets to stop")
    dp = sub.add_parser("doctor", help="check python, the venv's pins, docker and compose v2 (exit 1 naming "
                        "what is missing and its fix)")
    dp.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    run = sub.add_parser("_run", help=argparse.SUPPRESS)
    run.add_argument("job")
    refused = sub.add_parser("_upload-refused", help=argparse.SUPPRESS)  # agent.remote.upload_command, lock held
    refused.add_argument("--release", required=True)
    refused.add_argument("--waited", type=int, required=True)
    return backup_cli.add_parsers(sub, p)


def cmd_apply(store: Store, args: argparse.Namespace) -> int:
    bundle = args.bundle.resolve()
    if not (bundle / "release.json").is_file():
        print(f"--bundle {bundle}: no release.json there (expected a release bundle directory)", file=sys.stderr)
        return 2
    release = json.loads((bundle / "release.json").read_text()).get("id", "?")
    spec = {"bundle": str(bundle), "release": release, "options": options_from(args).__dict__}
    return start_job(store, "apply", spec, args.detach)


def cmd_rollback(store: Store, args: argparse.Namespace) -> int:
    spec = {"target": args.target, "release": args.target or "previous", "options": options_from(args).__dict__}
    return start_job(store, "rollback", spec, args.detach)


def cmd_gate(store: Store, args: argparse.Namespace) -> int:
    if not release.RELEASE_ID.match(args.release):
        print(f"--release {args.release!r}: not a release id ({release.RELEASE_ID_RULE})", file=sys.stderr)
        return 2
    spec = {"release": args.release, "report": str(args.report) if args.report else None,
            "options": options_from(args).__dict__}
    return start_job(store, "gate", spec, args.detach)


def cmd_confirm(store: Store, args: argparse.Namespace) -> int:
    spec = {"release": args.release, "options": {**Options().__dict__, "lock_timeout": args.lock_timeout}}
    return start_job(store, "confirm", spec, args.detach)


def cmd_recover(store: Store, args: argparse.Namespace) -> int:
    spec = {"release": "current", "options": {**Options().__dict__, "lock_timeout": args.lock_timeout}}
    return start_job(store, "recover", spec, args.detach)


def cmd_status(store: Store, args: argparse.Namespace) -> int:
    print(json.dumps(hoststatus.status(store, cosign=args.cosign), sort_keys=True,
                     indent=None if args.compact else 2))
    return EXIT_OK


def cmd_history(store: Store, args: argparse.Namespace) -> int:
    print(hoststatus.history(store, args.limit, args.json))
    return EXIT_OK


def cmd_wait(store: Store, args: argparse.Namespace) -> int:
    job = args.job or latest_job(store)
    if job is None:
        print(f"no jobs recorded for project {store.project}", file=sys.stderr)
        return 2
    return follow(store, job)


def cmd_secrets(store: Store, args: argparse.Namespace) -> int:
    """Secrets arrive on stdin (never argv) and land in a 0600 file; only key names are echoed or audited."""
    data = sys.stdin.buffer.read()
    try:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise ValueError(f"secrets line {line}: not UTF-8 text") from None
        secrets = secretfile.parse_secrets(text)
        text = secretfile.render_secrets(secrets)
    except ValueError as exc:
        print(f"secrets refused, nothing changed: {exc}", file=sys.stderr)
        return 2
    store.write_secrets(text)
    fingerprint = hashlib.sha256(text.encode()).hexdigest()[:12]
    store.audit("secrets.updated", keys=sorted(secrets), fingerprint=fingerprint)
    print(f"{len(secrets)} secrets written to {store.secrets_file} (mode 0600, fingerprint {fingerprint}); "
          "they take effect with the next apply")
    return EXIT_OK


def cmd_record(store: Store, args: argparse.Namespace) -> int:
    """A release run's record (its steps, every measurement, the outcome) joins the host's audit, masked."""
    try:
        record = json.loads(sys.stdin.read())
    except ValueError as exc:
        print(f"record refused: not JSON ({exc})", file=sys.stderr)
        return 2
    if not isinstance(record, dict) or not isinstance(record.get("run"), str):
        print("record refused: not a release run record (an object with `run`)", file=sys.stderr)
        return 2
    store.ensure()
    store.audit("release.run", run=record["run"], outcome=record.get("outcome"), record=record)
    print(f"run {record['run']} ({record.get('outcome')}) recorded in {store.base / 'audit.jsonl'}")
    return EXIT_OK


def cmd_registry_auth(store: Store, args: argparse.Namespace) -> int:
    """Pull credentials arrive on stdin (never argv) and land in the docker config, 0600; only servers are named."""
    try:
        path, servers = registry_auth.install(sys.stdin.read(), os.environ)
    except ValueError as exc:
        print(f"{exc}; nothing changed", file=sys.stderr)
        return 2
    store.ensure()
    store.audit("registry.credentials", servers=servers)
    print(f"registry credentials for {', '.join(servers)} written to {path} (mode 0600)")
    return EXIT_OK


def cmd_stop(store: Store, args: argparse.Namespace) -> int:
    """Take the project's containers down under the rollout lock. Volumes, images, releases and the current
    pointer stay, so the next `apply` (or `rollback`) brings the same data back. A provisional release is ended
    first: its worker must not bring containers back up at its deadline after the stack was destroyed."""
    release = store.run_target()
    if release is None:
        print(f"project {store.project}: nothing to stop (no release has run here)")
        return EXIT_OK
    holder = {"command": "stop", "release": release, "pid": os.getpid()}
    try:
        with store.lock(args.lock_timeout, holder):
            for group in kill_leftovers(store.children):  # a dead worker's `up` must not bring them back
                print(f"killed a process group a dead worker left running: {' '.join(group.get('argv') or [])}")
            provisional = store.read_provisional()
            if provisional:
                store.clear_provisional()
                print(f"provisional release {provisional.get('release')} ended: nothing goes back after the stop")
            manifest = store.release_manifest(release)
            project = cc.ComposeProject(store.project, store.run_link,
                                        tuple(manifest.get("compose_files", ["docker-compose.yml"])))
            proc = subprocess.run(cc.down(project, args.stop_timeout), capture_output=True, text=True,
                                  timeout=args.stop_timeout * 4 + 60, check=False)
            if proc.returncode != 0:
                error = store.masker()(proc.stderr.strip()[-500:])
                store.audit("stop.failed", release=release, error=error)
                print(f"compose down exited {proc.returncode}: {error}", file=sys.stderr)
                return EXIT_FAILED
            store.audit("stopped", release=release, **({"provisional": provisional} if provisional else {}))
    except LockTimeout as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_LOCK
    print(f"project {store.project}: release {release} stopped (volumes, images and releases kept)")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    """What this host lacks for the agent: needs no project, changes nothing."""
    code, text = doctor.report(as_json=args.json, runner=run_process)
    sys.stdout.write(text)
    return code


def cmd_upload_refused(store: Store, args: argparse.Namespace) -> int:
    """An upload could not take the project's lock: say who holds it (as a job that waited would), audit it."""
    reason = (f"another rollout holds the lock of project {store.project} ({describe_holder(store.lock_holder())}); "
              f"waited {args.waited}s")
    store.audit("upload.lock_timeout", release=args.release, reason=reason)
    print(f"upload of {args.release} to project {store.project} refused: {reason}; nothing was replaced",
          file=sys.stderr)
    return EXIT_LOCK


def cmd_run(store: Store, args: argparse.Namespace) -> int:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return run_job(store, args.job)


COMMANDS = {"apply": cmd_apply, "rollback": cmd_rollback, "status": cmd_status, "history": cmd_history,
            "wait": cmd_wait, "recover": cmd_recover, "gate": cmd_gate, "confirm": cmd_confirm,
            "secrets": cmd_secrets, "record": cmd_record, "registry-auth": cmd_registry_auth, "stop": cmd_stop,
            "_run": cmd_run,
            "_upload-refused": cmd_upload_refused, **backup_cli.COMMANDS}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "doctor":
        return cmd_doctor(args)
    if args.project is None:
        parser.error(f"the {args.command} command needs --project (the compose project, e.g. green)")
    if not release.SERVICE_NAME.match(args.project):
        print(f"--project {args.project!r} must match {release.SERVICE_NAME.pattern}", file=sys.stderr)
        return 2
    return COMMANDS[args.command](Store(args.root, args.project), args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # the follower's reader went away (SSH closed): the worker is unaffected
        sys.exit(EXIT_CRITICAL)
