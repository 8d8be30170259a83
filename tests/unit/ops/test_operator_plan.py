"""ops.operator_plan: every pulumi argv and remote command the operator CLI runs, as exact strings."""

from __future__ import annotations

from typing import Any

import pytest

from ops import operator_plan as plan
from ops.operator_plan import HostAccess, PlanError, Step
from tests.ssh_test_keys import HOST_PUBLIC_KEY

D = "sha256:" + "a" * 64


def outputs(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "color": "green", "liveColor": "green",
        "release": {"id": "r3", "images": {"gateway-mcp": f"reg/gw@{D}"}, "content": "c3", "commit": "abc"},
        "releases": {"r1": {}, "r2": {}, "r3": {}},
        "hosts": {"names": ["devtools-prod-green-1", "devtools-prod-green-2"], "addresses": ["203.0.113.7",
                  "203.0.113.8"], "ports": [22, 22], "dropletIds": [1, 2], "sshUser": "root",
                  "sshHostKey": HOST_PUBLIC_KEY, "root": "/opt/devtools"},
    }
    return base | extra


def test_flip_is_one_config_value_and_one_update() -> None:
    steps = plan.flip_plan("prod", outputs(), "blue")
    assert steps == [
        Step("set devtools:liveColor = blue on stack prod",
             ("pulumi", "config", "set", "devtools:liveColor", "blue", "--stack", "prod", "--non-interactive")),
        Step("pulumi up on stack prod (the engine shows what changes)",
             ("pulumi", "up", "--yes", "--diff", "--message", "flip traffic green -> blue", "--stack", "prod",
              "--non-interactive")),
    ]
    assert plan.render_plan("flip", steps) == (
        "flip\n"
        "  1. set devtools:liveColor = blue on stack prod\n"
        "      $ pulumi config set devtools:liveColor blue --stack prod --non-interactive\n"
        "  2. pulumi up on stack prod (the engine shows what changes)\n"
        "      $ pulumi up --yes --diff --message 'flip traffic green -> blue' --stack prod --non-interactive"
    )


def test_flip_refuses_unknown_color_and_stacks_without_traffic() -> None:
    with pytest.raises(PlanError, match="'red' is not one of green, blue"):
        plan.flip_plan("prod", outputs(), "red")
    no_traffic = outputs()
    del no_traffic["liveColor"]
    with pytest.raises(PlanError, match="stack blue exports no liveColor: it owns no traffic resource"):
        plan.flip_plan("blue", no_traffic, "blue")


def test_rollback_pins_the_release_before_the_current_one() -> None:
    steps = plan.rollback_plan("prod", outputs(), None, flip=False)
    assert [s.argv for s in steps] == [
        ("pulumi", "config", "set", "devtools:release", "r2", "--stack", "prod", "--non-interactive"),
        ("pulumi", "up", "--yes", "--diff", "--message", "roll back r3 -> r2", "--stack", "prod", "--non-interactive"),
    ]


def test_rollback_to_a_named_release_and_its_refusals() -> None:
    assert plan.rollback_plan("prod", outputs(), "r1", flip=False)[0].argv[4] == "r1"
    with pytest.raises(PlanError, match="release 'r9' is not in stack prod's history \\(known: r1, r2, r3\\)"):
        plan.rollback_plan("prod", outputs(), "r9", flip=False)
    with pytest.raises(PlanError, match="'r3' is already the current release"):
        plan.rollback_plan("prod", outputs(), "r3", flip=False)
    with pytest.raises(PlanError, match="no earlier release in the stack's history \\(known: r3\\)"):
        plan.rollback_plan("prod", outputs(releases={"r3": {}}), None, flip=False)


def test_rollback_by_flipping_back() -> None:
    steps = plan.rollback_plan("prod", outputs(liveColor="blue"), None, flip=True)
    assert steps[0].argv[3:5] == ("devtools:liveColor", "green")
    assert steps[1].argv[5] == "flip traffic blue -> green"


def test_hosts_from_the_stack_outputs() -> None:
    hosts = plan.hosts_of("prod", outputs())
    assert hosts == [HostAccess("devtools-prod-green-1", "203.0.113.7", 22, "root", HOST_PUBLIC_KEY, "/opt/devtools",
                                "green"),
                     HostAccess("devtools-prod-green-2", "203.0.113.8", 22, "root", HOST_PUBLIC_KEY, "/opt/devtools",
                                "green")]


def test_droplets_without_a_pinned_host_key_are_refused() -> None:
    """ops.cli trusted the first key a droplet showed (accept-new, empty known_hosts). Droplets export the host
    key cloud-init installed; one that exports none is refused rather than trusted on first use."""
    unpinned = outputs()
    unpinned["hosts"] = {**unpinned["hosts"], "sshHostKey": ""}
    with pytest.raises(PlanError, match=(
            r"^stack prod's droplets export no pinned host key \(hosts.sshHostKey\): refusing to trust whatever key "
            r"they show; set devtools:sshHostPrivateKey \(`python -m ops.cli hostkey --stack prod`\) and run "
            r"`pulumi up --stack prod`")):
        plan.hosts_of("prod", unpinned)
    existing = {**unpinned["hosts"], "dropletIds": []}  # an existing host (the stand-in) may still be unpinned
    assert plan.hosts_of("local", outputs(hosts=existing))[0].host_key == ""


def test_host_key_generation_and_its_secret_step() -> None:
    """The host key is made by ssh-keygen in a private temporary directory and set as a secret from stdin: the
    private key never appears in an argv, and the plan shows only its public half."""
    assert plan.keygen_argv("/tmp/x/host_key", "prod") == (
        "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "devtools-host-prod", "-f", "/tmp/x/host_key")
    step = plan.host_key_step("prod", HOST_PUBLIC_KEY)
    assert step.argv == ("pulumi", "config", "set", "--secret", "devtools:sshHostPrivateKey", "--stack", "prod",
                         "--non-interactive")
    assert step.what == ("set devtools:sshHostPrivateKey on stack prod as a secret (the private half, on stdin); "
                         f"droplets created from now on present {HOST_PUBLIC_KEY}")


def test_hosts_missing_or_from_an_older_program() -> None:
    with pytest.raises(PlanError, match="stack blue exports no hosts: run `pulumi up --stack blue` first"):
        plan.hosts_of("blue", {})
    old = outputs(hosts={"names": ["a"], "addresses": ["1.2.3.4"], "dropletIds": [1]})
    with pytest.raises(PlanError, match="lacks ports, sshUser, root: it was written by an older program"):
        plan.hosts_of("prod", old)


def test_known_hosts_line_pins_the_port() -> None:
    host = HostAccess("h", "127.0.0.1", 2222, "root", "ssh-ed25519 AAAAC3", "/opt/devtools", "green")
    assert plan.known_hosts_line(host) == "[127.0.0.1]:2222 ssh-ed25519 AAAAC3\n"
    assert plan.known_hosts_line(HostAccess("h", "10.0.0.5", 22, "root", "ssh-rsa AAA", "/r", "blue")) == (
        "10.0.0.5 ssh-rsa AAA\n")


def test_remote_commands() -> None:
    host = HostAccess("h", "127.0.0.1", 2222, "root", "", "/opt/devtools", "blue")
    assert plan.status_command(host) == (
        "cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent --root /opt/devtools "
        "--project blue status --compact")
    assert plan.collect_command(host) == "cd /opt/devtools/blue && tar -cf - reports diagnostics"


def test_reading_commands() -> None:
    assert plan.stack_outputs("local") == ("pulumi", "stack", "output", "--json", "--stack", "local",
                                           "--non-interactive")
    assert plan.config_get("prod", "sshPrivateKey") == ("pulumi", "config", "get", "devtools:sshPrivateKey",
                                                        "--stack", "prod", "--non-interactive")
    assert plan.preview_no_changes("prod") == ("pulumi", "preview", "--expect-no-changes", "--diff", "--stack",
                                               "prod", "--non-interactive")


def test_intended_release_needs_images() -> None:
    assert plan.intended_release("prod", outputs())["id"] == "r3"
    with pytest.raises(PlanError, match="stack prod exports no release"):
        plan.intended_release("prod", {"release": {"id": "x"}})


def test_traffic_differs_names_both_records_and_the_fix():
    """The stack's liveColor is the one record of where traffic goes: a load balancer moved by hand is reported
    with the command that puts it back, and agreement is silence."""
    assert plan.traffic_differs("local", "green", ["green"]) is None
    assert plan.traffic_differs("local", "green", ["blue"]) == (
        "TRAFFIC DIFFERS: stack local says liveColor green, the load balancer serves blue; put it back with "
        "`python -m ops.cli flip green --stack local` (or flip to blue to keep it)")
    assert plan.traffic_differs("local", "green", []) is not None
    assert plan.traffic_differs("local", "green", ["green", "blue"]) is not None


def test_reassert_runs_the_traffic_resources_own_command():
    steps = plan.reassert_plan("green", ["bash", "/r/scripts/local-env.sh", "flip", "green"])
    assert [s.render() for s in steps] == [
        "move the load balancer back to green, as the stack records\n      $ bash /r/scripts/local-env.sh flip green"]


def test_other_release_names_what_runs_what_is_recorded_and_the_fix():
    """A host running another release than its stack records (the bench, a test, a hand) is reported with the
    command that applies the recorded one again; agreement is silence."""
    assert plan.other_release("local", "127.0.0.1:2222", "r1", "r1") is None
    assert plan.other_release("local", "127.0.0.1:2222", "bench-7", "r1") == (
        "OTHER RELEASE: host 127.0.0.1:2222 runs bench-7, stack local records r1; "
        "`python -m ops.cli reapply --stack local` applies the recorded one again")
    assert "runs no release" in str(plan.other_release("prod", "h", None, "r1"))


def test_reapply_replaces_each_hosts_apply_and_nothing_else():
    """Only the apply resources are replaced: each host applies the recorded release again and its gate re-runs;
    uploads, secrets, images and traffic stay as they are."""
    remote = "urn:pulumi:local::devtools::x$command:remote:Command::"
    export = {"deployment": {"resources": [
        {"type": "command:remote:Command", "urn": remote + "release-h1-upload"},
        {"type": "command:remote:Command", "urn": remote + "release-h1-apply"},
        {"type": "command:remote:Command", "urn": remote + "release-h2-apply"},
        {"type": "command:local:Command", "urn": "urn:pulumi:local::devtools::y$command:local:Command::traffic-apply"},
    ]}}
    urns = plan.apply_urns(export)
    assert urns == ["urn:pulumi:local::devtools::x$command:remote:Command::release-h1-apply",
                    "urn:pulumi:local::devtools::x$command:remote:Command::release-h2-apply"]
    steps = plan.reapply_plan("local", urns)
    assert [s.argv for s in steps] == [(
        "pulumi", "up", "--yes", "--diff", "--replace", urns[0], "--replace", urns[1], "--message",
        "apply the recorded release again", "--stack", "local", "--non-interactive")]
    with pytest.raises(PlanError, match=r"stack local has no host rollout yet: run `pulumi up --stack local` first"):
        plan.reapply_plan("local", plan.apply_urns({}))


def _crafted(**hosts: Any) -> dict[str, Any]:
    crafted = outputs()
    crafted["hosts"] = {**crafted["hosts"], **hosts}
    return crafted


@pytest.mark.parametrize(("crafted", "message"), [
    (_crafted(sshUser="-oProxyCommand=touch /tmp/pwned"),
     "stack prod's output hosts.sshUser \"-oProxyCommand=touch /tmp/pwned\" is not a user name such as root or "
     "deploy: refusing to use it"),
    (_crafted(addresses=["-oProxyCommand=sh", "203.0.113.8"]),
     "stack prod's output hosts.addresses[0] \"-oProxyCommand=sh\" is not an IP address or a host name: refusing to "
     "use it"),
    (_crafted(names=["../../../home/me/.ssh", "devtools-prod-green-2"]),
     "stack prod's output hosts.names[0] \"../../../home/me/.ssh\" is not a plain name (letters, digits, '.', '_', "
     "':' or '-', starting with a letter or digit): refusing to use it"),
    (_crafted(names=["a/b", "c"]), "hosts.names[0] \"a/b\" is not a plain name"),
    (_crafted(ports=[22, 70000]), "stack prod's output hosts.ports[1] 70000 is not a port 1-65535: refusing to use it"),
    (_crafted(ports=[22, True]), "hosts.ports[1] true is not a port 1-65535"),
    (_crafted(ports=[22, "22 -oProxyCommand=sh"]), "hosts.ports[1] \"22 -oProxyCommand=sh\" is not a port 1-65535"),
    (_crafted(root="/opt/../../etc"),
     "stack prod's output hosts.root \"/opt/../../etc\" is not an absolute path of letters, digits, . _ - / "
     "(without '..'): refusing to use it"),
    (_crafted(sshHostKey=HOST_PUBLIC_KEY + "\n@cert-authority * " + HOST_PUBLIC_KEY),
     "stack prod's output hosts.sshHostKey is not an OpenSSH public key (a public key is one line): refusing to use "
     "it"),
    (_crafted(addresses=["203.0.113.7"]),
     "stack prod's outputs hosts.names, hosts.addresses and hosts.ports differ in length: refusing to use them"),
    (outputs(color="green; rm -rf /"),
     "stack prod's output color \"green; rm -rf /\" is not a project name (lowercase letters, digits, '_' or '-', "
     "starting with a letter or digit): refusing to use it"),
], ids=["user as an ssh option", "address as an ssh option", "name escaping --out", "name with a slash", "port",
        "port as a boolean", "port with an option", "root with ..", "host key with a second line", "lengths", "color"])
def test_crafted_outputs_are_refused_naming_the_output(crafted: dict[str, Any], message: str) -> None:
    """ops.cli puts what the stack outputs say into ssh's argv, known_hosts, remote commands and local paths: a
    crafted sshUser became an ssh option (-oProxyCommand runs a command on the laptop), a crafted host name
    escaped the collect directory. Each value is checked first, and the error names the output."""
    with pytest.raises(PlanError) as err:
        plan.hosts_of("prod", crafted)
    assert message in str(err.value)


def test_plain_outputs_pass_the_checks() -> None:
    """Names like the stand-in's `127.0.0.1:2222`, IPv6 addresses and DNS names are accepted."""
    local = _crafted(names=["127.0.0.1:2222", "stand-in"], addresses=["2001:db8::7", "host-2.example.com"],
                     ports=[2222, 22], sshUser="deploy", dropletIds=[], sshHostKey="")
    local["color"] = "clidrift"  # any compose project the host agent accepts (the engine tests use their own)
    assert [(h.name, h.address, h.port, h.user, h.project) for h in plan.hosts_of("local", local)] == [
        ("127.0.0.1:2222", "2001:db8::7", 2222, "deploy", "clidrift"),
        ("stand-in", "host-2.example.com", 22, "deploy", "clidrift")]
