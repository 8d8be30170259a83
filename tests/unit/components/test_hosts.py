"""Hosts under mocks: the droplets, their protection, cloud-init as a secret, the SSH-only firewall, existing hosts."""

from collections.abc import Callable
from typing import Any

import pulumi
import yaml

from components.config import StackConfig
from components.hosts import Hosts, HostsArgs, droplet_tags, ssh_firewall_rules, web_tag
from tests.ssh_test_keys import HOST_PRIVATE_KEY, HOST_PUBLIC_KEY
from tests.unit.components.program_harness import World, run_components, secret_leaks
from tests.unit.components.stack_configs import SSH_PUBLIC_KEY, make_blue_config, make_config, make_local_config

DROPLET = "digitalocean:index/droplet:Droplet"
FIREWALL = "digitalocean:index/firewall:Firewall"
VPC = "digitalocean:index/vpc:Vpc"
SSH_KEY = "digitalocean:index/sshKey:SshKey"


def hosts_args(config: StackConfig, **rest: Any) -> HostsArgs:
    """HostsArgs as components/program.py builds them from a stack config."""
    return HostsArgs(identity=config.identity, hosts=config.hosts, public_key=config.ssh.public_key,
                     allowlist=config.ssh.allowlist, **rest)


def run_hosts(make_args: Callable[[], HostsArgs]) -> tuple[World, dict[str, Any]]:
    """Declare Hosts("hosts", make_args()) (Outputs must be made inside the program); return the registrations
    and the resolved public attributes."""
    seen: dict[str, Any] = {}

    def program() -> None:
        hosts = Hosts("hosts", make_args())
        seen.update(ports=hosts.ports, names=hosts.names, resources=len(hosts.resources))
        hosts.addresses.apply(lambda v: seen.__setitem__("addresses", v))
        hosts.droplet_ids.apply(lambda v: seen.__setitem__("droplet_ids", v))
        hosts.vpc_id.apply(lambda v: seen.__setitem__("vpc_id", v))
        pulumi.Output.all(*hosts.triggers).apply(lambda v: seen.__setitem__("triggers", v))

    return run_components(program), seen


def prod_hosts(**overrides: Any) -> tuple[World, dict[str, Any]]:
    config = make_config(**overrides)
    return run_hosts(lambda: hosts_args(config, host_key=pulumi.Output.secret(HOST_PRIVATE_KEY)))


def test_one_droplet_per_host_count_with_stack_color_names():
    """Names carry project, stack, color and index: two stacks or colors never collide in one DO account."""
    world, seen = prod_hosts(hostCount="3")
    droplets = world.of_type(DROPLET)
    assert [d.inputs["name"] for d in droplets] == ["devtools-prod-green-1", "devtools-prod-green-2",
                                                     "devtools-prod-green-3"]
    assert [d.name for d in droplets] == ["hosts-1", "hosts-2", "hosts-3"]
    assert seen["names"] == ["devtools-prod-green-1", "devtools-prod-green-2", "devtools-prod-green-3"]
    assert seen["ports"] == [22, 22, 22]
    assert len(seen["addresses"]) == 3 and all(a.startswith("203.0.113.") for a in seen["addresses"])


def test_droplet_inputs_follow_config():
    """Size, region, image, monitoring and tags come from config; the web tag lets the traffic firewall admit the
    load balancer."""
    world, _ = prod_hosts(dropletSize="s-4vcpu-8gb", region="fra1", monitoring="false")
    d = world.one(DROPLET).inputs
    assert (d["size"], d["region"], d["image"], d["monitoring"]) == ("s-4vcpu-8gb", "fra1", "ubuntu-24-04-x64", False)
    assert d["tags"] == ["devtools", "devtools-prod", "devtools-green", "devtools-web"]


def test_ssh_key_from_config_is_installed_on_every_droplet():
    """The rollout connects with the private half; droplets must carry exactly this key."""
    world, _ = prod_hosts(hostCount="2")
    key = world.one(SSH_KEY)
    assert key.inputs == {"name": "devtools-prod", "publicKey": SSH_PUBLIC_KEY}
    fingerprint = key.outputs["fingerprint"]
    assert [d.inputs["sshKeys"] for d in world.of_type(DROPLET)] == [[fingerprint], [fingerprint]]


def test_vpc_created_when_none_given_and_droplets_join_it():
    """The primary stack owns the VPC (private traffic between hosts stays off the public network)."""
    world, seen = prod_hosts(vpcIpRange="10.120.0.0/20")
    vpc = world.one(VPC)
    assert vpc.inputs == {"name": "devtools-prod", "region": "nyc3", "ipRange": "10.120.0.0/20"}
    assert seen["vpc_id"].startswith("vpc-")
    assert world.one(DROPLET).inputs["vpcUuid"] == seen["vpc_id"]


def test_given_vpc_is_joined_not_created():
    """A standby joins prod's VPC; creating a second one would split the colors' private networks."""
    world, seen = run_hosts(lambda: hosts_args(make_blue_config(), vpc_id="vpc-prod"))
    assert world.of_type(VPC) == []
    assert world.one(DROPLET).inputs["vpcUuid"] == "vpc-prod"
    assert seen["vpc_id"] == "vpc-prod"


def test_user_data_is_a_secret_cloud_config_without_registry_credentials():
    """user_data carries the host key: in plain text it would show in every diff and state file. It carries no
    registry credential any more (any container could read it from the metadata service, snapshots copied it,
    and a running droplet never saw a new one): the rollout hands those over SSH."""
    world, _ = prod_hosts()
    droplet = world.one(DROPLET)
    assert droplet.secret_input("userData")
    assert droplet.inputs["userData"].startswith("#cloud-config\n")
    assert "auths" not in droplet.inputs["userData"] and "/root/.docker" not in droplet.inputs["userData"]
    assert "/opt/devtools/venv/bin/pip" in droplet.inputs["userData"]
    assert secret_leaks(world, [HOST_PRIVATE_KEY.strip(), HOST_PRIVATE_KEY.splitlines()[2]]) == []


def test_user_data_installs_the_stacks_host_key_as_a_secret():
    """The host key's private half reaches the droplet only inside user data, which is a Pulumi secret: never in a
    diff, a log or the state in plain text."""
    config = make_config()
    world, _ = run_hosts(lambda: hosts_args(config, host_key=pulumi.Output.secret(HOST_PRIVATE_KEY)))
    droplet = world.one(DROPLET)
    assert droplet.secret_input("userData")
    assert droplet.inputs["userData"].endswith(f"  ed25519_public: {HOST_PUBLIC_KEY}\n")
    assert yaml.safe_load(droplet.inputs["userData"])["ssh_keys"]["ed25519_private"] == HOST_PRIVATE_KEY
    assert secret_leaks(world, [HOST_PRIVATE_KEY.splitlines()[2]]) == []


def test_user_data_without_credentials_writes_no_docker_config():
    """Without a host key there is nothing secret, and there is never a /root/.docker/config.json."""
    world, _ = run_hosts(lambda: hosts_args(make_config()))
    droplet = world.one(DROPLET)
    assert not droplet.secret_input("userData")
    assert droplet.inputs["userData"].startswith("#cloud-config\n")
    assert "/root/.docker/config.json" not in droplet.inputs["userData"]


def test_primary_droplets_are_protected_and_ignore_user_data_and_image():
    """A replaced primary loses its volumes: protect it, and a credential rotation (user data) or a new image slug
    must not force a replacement."""
    world, _ = prod_hosts(hostCount="2")
    for d in world.of_type(DROPLET):
        assert d.protect
        assert d.ignore_changes == ["userData", "image", "sshKeys"]


def test_unprotected_primary_still_ignores_user_data_and_image():
    """devtools:protect false lifts deletion protection, but a credential rotation must still not replace hosts."""
    world, _ = prod_hosts(protect="false")
    d = world.one(DROPLET)
    assert not d.protect
    assert d.ignore_changes == ["userData", "image", "sshKeys"]


def test_standby_droplets_boot_the_base_image_and_are_replaceable():
    """Blue boots the base image with cloud-init (never a snapshot of prod, which carried prod's data and secrets);
    a new image slug may replace it, so neither protect nor ignore_changes on image — but a credential rotation
    alone must not (blue may be live)."""
    world, _ = run_hosts(lambda: hosts_args(make_blue_config(hostCount="2"), vpc_id="vpc-prod",
                                           host_key=pulumi.Output.secret(HOST_PRIVATE_KEY)))
    droplets = world.of_type(DROPLET)
    assert [d.inputs["name"] for d in droplets] == ["devtools-blue-blue-1", "devtools-blue-blue-2"]
    for d in droplets:
        assert d.inputs["image"] == "ubuntu-24-04-x64"
        assert not d.protect
        assert "image" not in d.ignore_changes
        assert d.ignore_changes == ["userData", "sshKeys"]
        assert d.inputs["tags"] == ["devtools", "devtools-blue", "devtools-blue", "devtools-web"]


def test_ssh_firewall_rules_exact():
    """Inbound SSH from the allowlist only; outbound open for package installs and image pulls."""
    inbound, outbound = ssh_firewall_rules(("203.0.113.7/32", "198.51.100.0/24"))
    assert inbound == [{"protocol": "tcp", "port_range": "22", "source_addresses": ["203.0.113.7/32",
                                                                                    "198.51.100.0/24"]}]
    assert outbound == [
        {"protocol": "tcp", "port_range": "1-65535", "destination_addresses": ["0.0.0.0/0", "::/0"]},
        {"protocol": "udp", "port_range": "1-65535", "destination_addresses": ["0.0.0.0/0", "::/0"]},
        {"protocol": "icmp", "destination_addresses": ["0.0.0.0/0", "::/0"]},
    ]


def test_firewall_admits_ssh_from_the_allowlist_only_on_every_droplet():
    """SSH open to the world is the classic brute-force target; HTTP is the traffic component's firewall."""
    world, seen = prod_hosts(hostCount="2", sshAllowlist='["203.0.113.7/32", "198.51.100.0/24"]')
    fw = world.one(FIREWALL).inputs
    assert fw["name"] == "devtools-prod-ssh"
    assert fw["inboundRules"] == [{"protocol": "tcp", "portRange": "22",
                                   "sourceAddresses": ["203.0.113.7/32", "198.51.100.0/24"]}]
    assert not any(set(r.get("sourceAddresses", [])) & {"0.0.0.0/0", "::/0"} for r in fw["inboundRules"])
    assert fw["dropletIds"] == seen["droplet_ids"]
    assert len(seen["droplet_ids"]) == 2


def test_droplet_ids_are_ints_and_triggers_are_the_droplet_ids():
    """DO inputs (load balancer, firewall droplet_ids) take ints; a rollout keyed on the id re-runs on a new host."""
    _, seen = prod_hosts(hostCount="2")
    assert all(type(i) is int for i in seen["droplet_ids"])
    assert seen["triggers"] == [str(i) for i in seen["droplet_ids"]]
    assert seen["resources"] == 3  # two droplets and the firewall the rollout's SSH goes through


def test_children_are_parented_to_the_component():
    """Children outside the component would not move with it (aliases, protect inheritance, the tree view)."""
    world, _ = prod_hosts()
    hosts = world.one("devtools:index:Hosts")
    assert all(r.parent == hosts.urn for r in world.registrations if r.custom)


def test_existing_hosts_create_nothing():
    """provider existing: the machines exist already; the program must not create or own any resource."""
    config = make_local_config(existingHosts='["127.0.0.1:2222", "10.0.0.5"]')
    world, seen = run_hosts(lambda: hosts_args(config))
    assert [r for r in world.registrations if r.custom] == []
    assert seen == {"addresses": ["127.0.0.1", "10.0.0.5"], "ports": [2222, 22], "droplet_ids": [], "vpc_id": "",
                    "triggers": ["127.0.0.1:2222", "10.0.0.5:22"], "names": ["127.0.0.1:2222", "10.0.0.5:22"],
                    "resources": 0}


def test_tags_pure():
    """The web tag is the contract with the traffic component's firewall and load balancer."""
    assert web_tag("devtools") == "devtools-web"
    assert droplet_tags(make_blue_config().identity) == ["devtools", "devtools-blue", "devtools-blue", "devtools-web"]
    assert droplet_tags(make_config(stack="staging").identity) == ["devtools", "devtools-staging", "devtools-green",
                                                         "devtools-web"]
