"""ValidationGate under mocks: one remote command that validates, re-runs on new content, and reports a verdict."""

import pulumi
from pulumi_command import remote

from components import commands
from components.validation import ValidationGate, ValidationGateArgs
from tests.unit.components import stack_configs as sc
from tests.unit.components.program_harness import run_components, secret_leaks

CMD = "command:remote:Command"


def _run(cfg=None, *, content="c" * 64, depends=False, rerun_on=()):
    cfg = cfg or sc.make_config()

    def program():
        conn = commands.connection_args("203.0.113.5", 22, cfg.ssh.login, sc.SSH_PRIVATE_KEY)
        opts = None
        if depends:
            before = remote.Command("before", connection=conn, create="true")
            opts = pulumi.ResourceOptions(depends_on=[before])
        gate = ValidationGate("gate", ValidationGateArgs(cfg.agent_place, cfg.release.validator, conn, "r1", content,
                                                         "green-1", tuple(rerun_on)), opts)
        pulumi.export("summary", gate.summary)
        pulumi.export("passed", gate.passed)

    return run_components(program)


def test_gate_is_a_component_with_one_validating_command():
    world = _run()
    gate = world.one("devtools:index:ValidationGate")
    run = world.one(CMD, "gate-run")
    assert run.parent == gate.urn
    cfg = sc.make_config()
    assert run.inputs["create"] == commands.validate_script(cfg.agent_place, cfg.release.validator, "r1")
    assert run.inputs["logging"] == "stdoutAndStderr"
    assert run.inputs["triggers"] == ["c" * 64]


def test_gate_summary_is_parsed_from_the_last_stdout_line():
    """Traffic reads `passed`; the host's JSON line must arrive as a dict, not as text."""
    world = _run()
    assert world.exports_plain["summary"] == {"passed": True, "checks": 16, "failed": [], "duration_s": 1.2}
    assert world.exports_plain["passed"] is True


def test_new_content_replaces_the_gate_and_same_content_does_not():
    """Same release content must be a no-op on the next `up`; new content must validate again."""
    first, again, other = _run(), _run(), _run(content="d" * 64)
    assert first.one(CMD, "gate-run").raw == again.one(CMD, "gate-run").raw
    assert other.one(CMD, "gate-run").inputs["triggers"] == ["d" * 64]
    assert other.one(CMD, "gate-run").inputs["create"] == first.one(CMD, "gate-run").inputs["create"]


def test_extra_triggers_follow_the_content():
    world = _run(rerun_on=["apply-id-1"])
    assert world.one(CMD, "gate-run").inputs["triggers"] == ["c" * 64, "apply-id-1"]


def test_callers_depends_on_holds_back_the_command():
    """The gate must not validate before the apply it checks has finished."""
    world = _run(depends=True)
    before = world.one(CMD, "before")
    assert before.urn in world.one(CMD, "gate-run").dependencies
    assert world.depends_on(world.one(CMD, "gate-run"), before)


def test_gate_leaks_no_secret():
    """The validator's command is logged and stored in plain text: the SSH key must only be in the connection."""
    world = _run()
    assert secret_leaks(world, sc.SECRET_VALUES) == []
    assert world.one(CMD, "gate-run").secret_input("connection")
