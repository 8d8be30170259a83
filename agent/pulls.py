"""The `pull` step of an activation, each image's pull timed (standard library only).

One `docker compose pull --policy missing <services>` per distinct image of the release (the services that run it
named), all at once, each through the same runner under --pull-timeout: one image's pull takes as long as its own
command, and agent.metrics records it (the pull histogram, each service's last pull). A config naming fewer than two
images (or a service without one) is pulled with one `compose pull` of the whole project, as before. The step fails
like any other (`pull`, StepFailed), once every pull has ended, with the first failure in image order. An image the
host already has is counted too: `--policy missing` then only checks it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

from agent import compose as cc
from agent import metrics
from agent.compose_output import image_groups

if TYPE_CHECKING:
    from agent.steps import Steps


def pull(s: Steps, release_id: str, *, settle: bool = False) -> None:
    from agent.steps import StepFailed  # noqa: PLC0415 - agent.steps imports this module

    def step(argv: list[str]) -> None:
        s.settled_step(argv, s.opts.pull_timeout, "pull", settle=settle)

    project = s.project_for(release_id)
    try:
        groups = image_groups(s.resolved(release_id, "pull"))
    except StepFailed:
        groups = {}
    if len(groups) < 2:
        t0 = s.clock()
        step(cc.pull(project))
        seconds = s.clock() - t0
        s.metrics.update(*(partial(metrics.observe_pull, services=services, seconds=seconds)
                           for services in groups.values()))
        return

    def one(services: tuple[str, ...]) -> float:
        t0 = s.clock()
        step(cc.pull(project, services))
        return s.clock() - t0

    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        futures = [(services, pool.submit(one, services)) for _, services in sorted(groups.items())]
    failure: BaseException | None = None
    pulled = []
    for services, future in futures:
        error = future.exception()
        if error is None:
            pulled.append(partial(metrics.observe_pull, services=services, seconds=future.result()))
        elif failure is None:
            failure = error
    s.metrics.update(*pulled)
    if failure is not None:
        raise failure
