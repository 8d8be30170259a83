"""`python -m ops.cli ssh-lease open|close|list --stack S`: the edges of an SSH lease (ops/lease_plan.py says what
a lease is): DigitalOcean's API through its official client (pydo), the runner's public address, the record file.

    open   admit this runner's public address (/32) to the stack's droplets on port 22 until now + --ttl, after
           closing the stack's expired leases; nothing to do when sshAllowlist already admits the address
           (a self-hosted runner or bastion with a fixed address). Writes --record for `close`.
    close  delete the recorded lease (this job's) and every expired lease of the stack.
    list   the stack's leases; exit 1 when one has expired (a killed job's, not closed yet).

The token is $DIGITALOCEAN_TOKEN: never an argument, never printed. Exit codes: 0 done · 1 failed or an expired
lease listed · 2 cannot start (no token, bad input).
"""

from __future__ import annotations

import argparse
import getpass
import json
import ssl
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from components.config_keys import NAMESPACE
from components.config_slices import stack_tag
from ops import lease_plan as plan
from ops.lease_plan import Lease, LeaseError

DO_API = "https://api.digitalocean.com"
WHATS_MY_IP = "https://api.ipify.org"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Firewalls:
    """The four firewall calls and the tag call a lease makes, through pydo. pydo returns DigitalOcean's error
    body ({"id", "message"}) for some statuses instead of raising: `_answer` turns those into LeaseError."""

    def __init__(self, token: str, api: str = DO_API, verify: bool | str = True) -> None:
        import pydo  # noqa: PLC0415 - azure-core is heavy; only the lease commands load it

        self._do = pydo.Client(token=token, endpoint=api, connection_verify=verify, retry_total=3,
                               connection_timeout=10, read_timeout=30)

    def list(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in range(1, 100):
            answer = self._do.firewalls.list(per_page=200, page=page)
            batch = api_answer(answer, "firewalls", "list the firewalls")
            found += batch
            if not batch or len(found) >= int((answer.get("meta") or {}).get("total", len(found))):
                break
        return found

    def ensure_tag(self, name: str) -> None:
        from azure.core.exceptions import HttpResponseError  # noqa: PLC0415

        try:
            api_answer(self._do.tags.create(body={"name": name}), "tag", f"create the tag {name}")
        except HttpResponseError as exc:
            if exc.status_code not in (409, 422):  # the tag exists already
                raise

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(api_answer(self._do.firewalls.create(body=dict(body)), "firewall", f"create {body['name']}"))

    def status(self, firewall_id: str) -> str:
        return str(api_answer(self._do.firewalls.get(firewall_id=firewall_id), "firewall", "read the lease")["status"])

    def delete(self, firewall_id: str) -> bool:
        """True when deleted, False when it was gone already."""
        answer = self._do.firewalls.delete(firewall_id=firewall_id)
        if answer is None:
            return True
        if isinstance(answer, Mapping) and answer.get("id") == "not_found":
            return False
        api_answer(answer, "-", f"delete firewall {firewall_id}")
        return False


def api_answer(answer: Any, key: str, what: str) -> Any:
    if isinstance(answer, Mapping) and key in answer:
        return answer[key]
    detail = f"{answer.get('id')}: {answer.get('message')}" if isinstance(answer, Mapping) else repr(answer)
    raise LeaseError(f"DigitalOcean refused to {what} ({detail})")


def public_address(url: str, verify: bool | str = True) -> str:
    """This machine's public address as a what's-my-IP service sees it."""
    context = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
    try:
        answer = httpx.get(url, timeout=10, verify=context)
        answer.raise_for_status()
    except httpx.HTTPError as exc:
        raise LeaseError(f"cannot learn this runner's public address from {url} ({exc}); pass --address") from exc
    return answer.text.strip()


def wait_active(api: Firewalls, firewall_id: str, timeout: float = 90, interval: float = 2,
                sleep: Callable[[float], None] = time.sleep) -> None:
    """Until DigitalOcean reports the firewall applied (status succeeded); SSH before that may be dropped."""
    waited = 0.0
    while (status := api.status(firewall_id)) != "succeeded":
        if status == "failed" or waited >= timeout:
            raise LeaseError(f"the lease firewall {firewall_id} is {status} after {waited:.0f}s")
        sleep(interval)
        waited += interval


def stack_facts(cwd: Path, stack: str) -> tuple[str, str, list[str]]:
    """(project, short stack name, sshAllowlist) from Pulumi.yaml and the stack's file (no secret among them)."""
    short = stack.rsplit("/", 1)[-1]
    try:
        project = str(yaml.safe_load((cwd / "Pulumi.yaml").read_text())["name"])
        stack_file = yaml.safe_load((cwd / f"Pulumi.{short}.yaml").read_text()) or {}
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise LeaseError(f"cannot read the project name and stack {short}'s sshAllowlist under {cwd} ({exc})") from exc
    allowlist = (stack_file.get("config") or {}).get(f"{NAMESPACE}:sshAllowlist") or []
    return project, short, [str(a) for a in allowlist]


def holder(env: Mapping[str, str]) -> str:
    run = env.get("GITHUB_RUN_ID")
    return f"gh-{run}-{env.get('GITHUB_RUN_ATTEMPT', '1')}" if run else getpass.getuser()


class NoToken(LeaseError):
    """No DigitalOcean token in the environment: nothing can start."""


def _api(args: argparse.Namespace, env: Mapping[str, str]) -> Firewalls:
    token = env.get("DIGITALOCEAN_TOKEN", "")
    if not token:
        raise NoToken("DIGITALOCEAN_TOKEN is not set: a lease needs a token that may create and delete firewalls")
    return Firewalls(token, args.api_url, args.ca_file or True)


def cmd_open(args: argparse.Namespace, env: Mapping[str, str], now: datetime) -> int:
    project, stack, allowlist = stack_facts(args.cwd, args.stack)
    source = plan.lease_source(args.address or public_address(args.whats_my_ip, args.ca_file or True))
    record: dict[str, Any] = {"stack": stack, "firewall_id": None, "addresses": [source]}
    admitted = plan.covering(source, allowlist)
    if admitted:
        print(f"{source} is already admitted by sshAllowlist {admitted} of stack {stack}: no lease needed")
    else:
        api = _api(args, env)
        for old in plan.to_close(plan.leases(api.list(), project, stack), None, now):
            api.delete(old.firewall_id)
            print(f"closed expired lease {old.name} ({', '.join(old.addresses)})")
        expires = plan.expiry(now, args.ttl)
        name = plan.lease_name(project, stack, expires, holder(env))
        tag = stack_tag(project, stack)
        api.ensure_tag(tag)
        firewall = api.create(plan.firewall_body(name, tag, source))
        lease = Lease(str(firewall["id"]), name, (source,), expires, plan.holder_name(holder(env)))
        record |= lease.record()
        _write(args.record, record)  # before waiting: a failed wait still leaves `close` what to delete
        wait_active(api, lease.firewall_id)
        print(f"opened SSH lease {name}: {source} may reach port 22 of the droplets tagged {tag} until "
              f"{expires.isoformat()}")
    _write(args.record, record)
    return EXIT_OK


def _write(path: str | None, record: Mapping[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(record, indent=2) + "\n")


def cmd_close(args: argparse.Namespace, env: Mapping[str, str], now: datetime) -> int:
    project, stack, _ = stack_facts(args.cwd, args.stack)
    recorded: str | None = None
    if args.record and Path(args.record).is_file():
        recorded = json.loads(Path(args.record).read_text()).get("firewall_id")
    api = _api(args, env)
    found = plan.leases(api.list(), project, stack)
    if recorded and recorded not in {lease.firewall_id for lease in found}:
        print(f"the recorded lease {recorded} is gone already")
    for lease in plan.to_close(found, recorded, now):
        gone = api.delete(lease.firewall_id)
        why = "this job's" if lease.firewall_id == recorded else "expired"
        print(f"closed {why} lease {lease.name} ({', '.join(lease.addresses)})" + ("" if gone else ": gone already"))
    return EXIT_OK


def cmd_list(args: argparse.Namespace, env: Mapping[str, str], now: datetime) -> int:
    project, stack, _ = stack_facts(args.cwd, args.stack)
    found = plan.leases(_api(args, env).list(), project, stack)
    print(plan.render(found, now))
    return EXIT_FAILED if any(lease.expired(now) for lease in found) else EXIT_OK


ACTIONS = {"open": cmd_open, "close": cmd_close, "list": cmd_list}


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("ssh-lease", parents=[common], help="admit this runner's address to the stack's droplets "
                                                           "on port 22 for a while (a lease), or close leases")
    s.add_argument("action", choices=sorted(ACTIONS))
    s.add_argument("--ttl", type=int, default=plan.DEFAULT_TTL_MINUTES,
                   help=f"open: minutes until the lease expires (default {plan.DEFAULT_TTL_MINUTES})")
    s.add_argument("--address", help="open: the public address to admit (default: asked of --whats-my-ip)")
    s.add_argument("--record", help="open writes the lease here; close deletes the lease recorded here")
    s.add_argument("--whats-my-ip", default=WHATS_MY_IP, help=f"open: where to learn the address ({WHATS_MY_IP})")
    s.add_argument("--api-url", default=DO_API, help=argparse.SUPPRESS)  # a test's loopback server
    s.add_argument("--ca-file", help=argparse.SUPPRESS)  # that server's certificate


def reported(what: str, action: Callable[[], int]) -> int:
    """`action()`, with a refusal (exit 2 for a missing token, else 1) or an API error (1) printed as
    `error: <what>: …` instead of raised."""
    from azure.core.exceptions import AzureError  # noqa: PLC0415

    try:
        return action()
    except LeaseError as exc:
        print(f"error: {what}: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, NoToken) else EXIT_FAILED
    except AzureError as exc:
        print(f"error: {what}: DigitalOcean's API {api_error(exc)}", file=sys.stderr)
        return EXIT_FAILED


def run(args: argparse.Namespace, env: Mapping[str, str], now: datetime | None = None) -> int:
    return reported(f"ssh-lease {args.action}", lambda: ACTIONS[args.action](args, env, now or datetime.now(UTC)))


def api_error(exc: Any) -> str:
    """`answered HTTP 401 (unauthorized: Unable to authenticate you)`, from DigitalOcean's error body; else the
    client's own words (a connection that failed, a timeout)."""
    response = getattr(exc, "response", None)
    try:
        body = response.json() if response is not None else None
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        return f"answered HTTP {exc.status_code} ({body.get('id')}: {body.get('message')})"
    return f"failed: {type(exc).__name__}: {exc.message}"
