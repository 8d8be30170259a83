"""Build and push the application's images for one release, and write their digest pins: the direct path the
bench and the e2e tests use beside the Pulumi program (which builds with docker-build; `make up` runs it).

How to build each service comes from the dev override file's `build:`, read by the program's own reader
(components.catalog). Every image is pushed as <registry>/<prefix>/<service>:<tag> and pinned by the digest the
registry gave it:

    {"release": TAG, "images": {SERVICE: "<registry>/<prefix>/<service>@sha256:..."}, "built_at": ..., "commit": ...}

`--broken SERVICE=VARIANT` builds a deliberately broken image (build arg BROKEN) under the tag
TAG-broken-VARIANT, so it never replaces a good image.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.compose import repo_digests
from agent.compose_output import tail
from agent.release import DIGEST, release_id_problem
from components.catalog import BuildSpec, CatalogError, image_repo, load_service_catalog
from components.config_keys import BY_NAME
from standin import localenv

ROOT = localenv.ROOT
COMPOSE_DIR = ROOT / "compose"
BROKEN_VARIANTS = ("crash", "errors", "latency", "leak", "migrate", "notrace", "slow", "unhealthy")
BUSYBOX = Path("/usr/bin/busybox")
VENDORED_BUSYBOX = Path("vendor") / "busybox"
PROGRAM_ID = re.compile(r"^[0-9a-f]{7,40}(-.*)?\Z")
"""What the Pulumi program names its releases: the commit, maybe with a suffix. The direct path never takes one."""


class BuildError(Exception):
    """A build that cannot go on; the message says why."""


def app_root(environ: Mapping[str, str]) -> Path:
    """The application checkout the build contexts live under: APP_ROOT, else devtools:appRoot's default."""
    root = Path(environ.get("APP_ROOT") or str(BY_NAME["appRoot"].default))
    return root if root.is_absolute() else ROOT / root


def build_specs(environ: Mapping[str, str]) -> dict[str, BuildSpec]:
    """How to build each service: the Pulumi program's own reader of the dev override file's `build:`."""
    try:
        return dict(load_service_catalog(COMPOSE_DIR, app_root(environ)).builds)
    except CatalogError as exc:
        raise BuildError(str(exc)) from exc


def check_tag(tag: str | None) -> str:
    """The release id of a direct build: one every host accepts, and never one the Pulumi program would choose
    (the same id with other content is refused by the hosts, so the two paths must never share one)."""
    if not tag:
        raise BuildError("--tag is required: name the release, e.g. --tag bench-1")
    problem = release_id_problem(tag)
    if problem:
        raise BuildError(f"--tag: {problem}")
    if PROGRAM_ID.match(tag):
        raise BuildError(f"--tag {tag!r} looks like a commit id, which names the Pulumi program's releases "
                         "(`make up`): give the direct path its own name, e.g. bench-1")
    return tag


def parse_services(value: str | None, known: Sequence[str]) -> list[str]:
    if value is None:
        return list(known)
    chosen = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in known]
    if unknown or not chosen:
        raise BuildError(f"--services {value!r}: unknown service {', '.join(unknown) or '(none given)'} "
                         f"(known: {', '.join(known)})")
    return list(dict.fromkeys(chosen))


def parse_broken(values: Sequence[str], services: Sequence[str]) -> dict[str, str]:
    """`SERVICE=VARIANT` options to {service: variant}; every error names the value that caused it."""
    broken: dict[str, str] = {}
    for value in values:
        service, sep, variant = value.partition("=")
        if not sep or not service or not variant:
            raise BuildError(f"--broken {value!r}: expected SERVICE=VARIANT")
        if service not in services:
            raise BuildError(f"--broken {value!r}: {service!r} is not a service being built "
                             f"({', '.join(services)})")
        if variant not in BROKEN_VARIANTS:
            raise BuildError(f"--broken {value!r}: unknown variant {variant!r} "
                             f"(one of {', '.join(BROKEN_VARIANTS)})")
        if service in broken:
            raise BuildError(f"--broken {value!r}: {service} is already broken as {broken[service]!r}")
        broken[service] = variant
    return broken


def image_tag(tag: str, variant: str | None) -> str:
    return tag if variant is None else f"{tag}-broken-{variant}"


def build_argv(spec: BuildSpec, ref: str, variant: str | None = None) -> list[str]:
    argv = ["docker", "build", "-q", "--force-rm", "-t", ref]
    for key, value in spec.args:
        argv += ["--build-arg", f"{key}={value}"]
    if variant is not None:
        argv += ["--build-arg", f"BROKEN={variant}"]
    return [*argv, "-f", str(spec.dockerfile), str(spec.context)]


def push_argv(ref: str) -> list[str]:
    return ["docker", "push", "-q", ref]


def pick_digest(repo_digests: str, repo: str) -> str:
    """The `repo@sha256:...` entry of `docker image inspect --format '{{json .RepoDigests}}'` output."""
    try:
        entries = json.loads(repo_digests)
    except ValueError as exc:
        raise BuildError(f"unreadable RepoDigests {repo_digests.strip()!r}: {exc}") from exc
    for entry in entries or []:
        name, _, digest = str(entry).partition("@")
        if name == repo and DIGEST.fullmatch(digest):
            return f"{name}@{digest}"
    raise BuildError(f"no digest for {repo} among RepoDigests {entries!r}: was the push refused?")


def pins_document(release: str, images: Mapping[str, str], built_at: datetime,
                  commit: str | None) -> dict[str, Any]:
    return {"release": release, "images": dict(sorted(images.items())),
            "built_at": built_at.astimezone(UTC).isoformat(timespec="seconds"), "commit": commit}


def run(argv: Sequence[str]) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BuildError(f"cannot run {argv[0]}: {exc}") from exc
    if proc.returncode != 0:
        shown = tail(proc.stderr) or tail(proc.stdout) or "(no output)"
        raise BuildError(f"`{' '.join(argv)}` exited {proc.returncode}:\n{shown}")
    return proc.stdout


def git_revision() -> str | None:
    """The checked-out commit (provenance in the pins), or None outside a git checkout."""
    try:
        return run(["git", "-C", str(ROOT), "rev-parse", "HEAD"]).strip()
    except BuildError:
        return None


def is_dynamic_elf(path: Path) -> bool:
    """True for a 64-bit little-endian ELF file with a program interpreter (that is, not static)."""
    with path.open("rb") as f:
        header = f.read(64)
        if len(header) < 64 or header[:6] != b"\x7fELF\x02\x01":
            return False
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return any(struct.unpack_from("<I", table, i * phentsize)[0] == 3 for i in range(phnum))


def ensure_vendor(spec: BuildSpec, source: Path = BUSYBOX) -> None:
    """Copies a static busybox into the build context when its Dockerfile wants one and it is missing."""
    target = spec.context / VENDORED_BUSYBOX
    if target.exists() or not spec.dockerfile.is_file() or str(VENDORED_BUSYBOX) not in spec.dockerfile.read_text():
        return
    if not source.is_file():
        raise BuildError(f"{target} is missing and {source} does not exist: apt-get install busybox-static")
    if is_dynamic_elf(source):
        raise BuildError(f"{source} is dynamically linked; the images need a static one (busybox-static)")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.copy2(source, partial)
    partial.replace(target)


@dataclass(frozen=True)
class Job:
    spec: BuildSpec
    repo: str
    tag: str
    variant: str | None

    @property
    def ref(self) -> str:
        return f"{self.repo}:{self.tag}"


def build_one(job: Job) -> tuple[str, float]:
    started = time.monotonic()
    run(build_argv(job.spec, job.ref, job.variant))
    run(push_argv(job.ref))
    pin = pick_digest(run(repo_digests(job.ref)), job.repo)
    return pin, time.monotonic() - started


def build_all(jobs: Sequence[Job], parallel: int) -> dict[str, str]:
    """Builds, pushes and pins every job, `parallel` at a time; after a failure, starts no new job.

    The first job runs alone: images of one Dockerfile share their first layers, and two builds racing to
    create the same layer leave two copies, after which a rebuild may pick the other one and give an
    unchanged service a new digest.
    """
    images: dict[str, str] = {}
    failed: list[str] = []
    width = max(len(j.spec.service) for j in jobs)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        first = pool.submit(build_one, jobs[0])
        futures: dict[Future[tuple[str, float]], Job] = {first: jobs[0]}
        if first.exception() is None:
            futures.update({pool.submit(build_one, job): job for job in jobs[1:]})
        for future in as_completed(futures):
            job = futures[future]
            if future.cancelled():
                continue
            try:
                pin, seconds = future.result()
            except BuildError as exc:
                failed.append(job.spec.service)
                print(f"FAILED {job.spec.service} ({job.ref}): {exc}", file=sys.stderr, flush=True)
                for other in futures:
                    other.cancel()
                continue
            images[job.spec.service] = pin
            print(f"  {job.spec.service:<{width}}  {seconds:5.1f}s  {pin}", file=sys.stderr, flush=True)
    if failed:
        raise BuildError(f"{', '.join(failed)} failed ({len(images)} built, "
                         f"{len(jobs) - len(images) - len(failed)} not started)")
    return images


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ops.build", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--registry", help="registry address (default: REGISTRY_ADDR, from scripts/local.env)")
    p.add_argument("--tag", help="release id and image tag, e.g. bench-1 (required unless --vendor-only; never a "
                                 "commit id: those name the Pulumi program's releases)")
    p.add_argument("--services", help="comma-separated subset of the services to build (default: all)")
    p.add_argument("--broken", action="append", default=[], metavar="SERVICE=VARIANT",
                   help=f"build SERVICE deliberately broken ({', '.join(BROKEN_VARIANTS)}); repeatable")
    p.add_argument("--repo-prefix", default="devtools", help="repository prefix in the registry (default: devtools)")
    p.add_argument("--out", type=Path, help="write the pins JSON here (default: standard output)")
    p.add_argument("--parallel", type=int, default=2, help="images built at once (default: 2)")
    p.add_argument("--vendor-only", action="store_true",
                   help="only copy the static busybox into the build contexts, then exit (what a Pulumi build of "
                        "examples/app needs first)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        if args.parallel < 1:
            raise BuildError(f"--parallel {args.parallel}: must be at least 1")
        registry = args.registry or localenv.load().registry
        specs = build_specs(os.environ)
        if not specs:
            raise BuildError("the compose files declare no `build:` for any service")
        if args.vendor_only:
            for spec in specs.values():
                ensure_vendor(spec)
            print(f"build contexts ready ({len(specs)} services)", file=sys.stderr)
            return 0
        services = parse_services(args.services, list(specs))
        broken = parse_broken(args.broken, services)
        tag = check_tag(args.tag)
        commit = git_revision()
        jobs = [Job(specs[s], image_repo(registry, args.repo_prefix, s), image_tag(tag, broken.get(s)),
                    broken.get(s)) for s in services]
        for job in jobs:
            ensure_vendor(job.spec)
        print(f"building {len(jobs)} images for release {tag} into {image_repo(registry, args.repo_prefix, '')} "
              f"({args.parallel} at a time)", file=sys.stderr, flush=True)
        images = build_all(jobs, args.parallel)
    except BuildError as exc:
        print(f"ops.build: {exc}", file=sys.stderr)
        return 1
    document = json.dumps(pins_document(tag, images, datetime.now(UTC), commit), indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(document)
    else:
        partial = args.out.with_name(f".{args.out.name}.partial")
        partial.write_text(document)
        partial.replace(args.out)
    print(f"built and pushed {len(images)} images in {time.monotonic() - started:.1f}s"
          + (f"; pins in {args.out}" if args.out else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
