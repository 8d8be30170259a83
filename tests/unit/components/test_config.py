"""Stack config: read once into frozen typed objects; every bad value rejected before any resource exists."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from components.config import ConfigError, load_config
from components.config_slices import AnalysisSettings
from tests.ssh_test_keys import (
    DEPLOY_PUBLIC_KEY,
    ECDSA_PUBLIC_KEY,
    ENCRYPTED_PRIVATE_KEY,
    HOST_PRIVATE_KEY,
    HOST_PUBLIC_KEY,
    RSA_PUBLIC_KEY,
)
from tests.unit.components.program_harness import run_program
from tests.unit.components.stack_configs import (
    LANGFUSE_SECRET,
    LOCAL,
    LOCAL_SECRETS,
    PROD,
    PROD_SECRETS,
    ROOT,
    SSH_PRIVATE_KEY,
    make_blue_config,
    make_config,
    make_local_config,
    with_overrides,
)

# (case id, base stack, overrides, the key the message must name, a fragment of what is allowed)
BAD: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("unknown provider", "prod", {"provider": "aws"}, "devtools:provider", "one of digitalocean, existing"),
    ("color typo", "prod", {"color": "Green"}, "devtools:color", "one of green, blue"),
    ("live color", "prod", {"liveColor": "red"}, "devtools:liveColor", "one of green, blue"),
    ("traffic mode", "prod", {"traffic": "dns"}, "devtools:traffic", "loadBalancer"),
    ("zero hosts", "prod", {"hostCount": "0"}, "devtools:hostCount", "an integer 1-10"),
    ("hosts not a number", "prod", {"hostCount": "two"}, "devtools:hostCount", "an integer 1-10"),
    ("region slug", "prod", {"region": "New York"}, "devtools:region", "a region slug"),
    ("size slug", "prod", {"dropletSize": "S-1VCPU"}, "devtools:dropletSize", "a droplet size slug"),
    ("boolean", "prod", {"monitoring": "yes"}, "devtools:monitoring", "true or false"),
    ("builder name", "local", {"buildBuilder": "my builder"}, "devtools:buildBuilder", "a buildx builder name"),
    ("allowlist not CIDR", "prod", {"sshAllowlist": '["office"]'}, "devtools:sshAllowlist", "CIDR"),
    ("allowlist host bits", "prod", {"sshAllowlist": '["203.0.113.7/24"]'}, "devtools:sshAllowlist", "host bits"),
    ("allowlist empty", "prod", {"sshAllowlist": "[]"}, "devtools:sshAllowlist", "0.0.0.0/0 is never the default"),
    ("allowlist everywhere", "prod", {"sshAllowlist": '["203.0.113.0/24", "0.0.0.0/0", "::/0"]'},
     "devtools:sshAllowlist", "0.0.0.0/0, ::/0 admits every address to port 22: list a fixed address (a "
     "self-hosted runner, a bastion); GitHub-hosted runners take an SSH lease (`ops.cli ssh-lease`, docs/ci.md)"),
    ("allowlist not JSON", "prod", {"sshAllowlist": "[203.0.113.7/32"}, "devtools:sshAllowlist", "a JSON list"),
    ("public key", "prod", {"sshPublicKey": "not-a-key"}, "devtools:sshPublicKey", "OpenSSH public key"),
    ("public key blob", "prod", {"sshPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3Qtb25seS1wdWJsaWMta2V5 "
                                                 "x"}, "devtools:sshPublicKey", "the key's data ends early"),
    ("host key blob", "local", {"sshHostKey": "ssh-rsa AAAAB3NzaC1yc2E="}, "devtools:sshHostKey",
     "the key's data ends early"),
    ("no private key", "prod", {"sshPrivateKey": None}, "devtools:sshPrivateKey", "the rollout needs an SSH key"),
    ("plain-text secret", "prod:plain", {}, "devtools:sshPrivateKey", "--secret"),
    ("release id", "prod", {"releaseId": "v1 final"}, "devtools:releaseId",
     "a release id the hosts accept (1-64 letters, digits, '.', '_' or '-', starting with a letter or digit, "
     "without '..'), or empty for the commit's short sha"),
    ("release value", "prod", {"release": "../../etc"}, "devtools:release", "`build`, `prod` or a release id"),
    ("release empty", "prod", {"release": ""}, "devtools:release", "`build`, `prod` or a release id"),
    ("keep releases", "prod", {"keepReleases": "1"}, "devtools:keepReleases", "an integer 2-50"),
    ("validate deadline", "prod", {"validateDeadline": "5"}, "devtools:validateDeadline", "an integer 10-1800"),
    ("vpc range public", "prod", {"vpcIpRange": "8.8.0.0/16"}, "devtools:vpcIpRange", "private IPv4 CIDR"),
    ("host root relative", "prod", {"hostRoot": "opt/devtools"}, "devtools:hostRoot", "an absolute path"),
    ("registry tier", "prod", {"registryTier": "gold"}, "devtools:registryTier", "one of auto"),
    ("registry name", "prod", {"registryName": "Dev_Tools"}, "devtools:registryName", "lowercase"),
    ("adopt with an address", "prod", {"registryAdopt": "true", "registryAddress": "127.0.0.1:5000"},
     "devtools:registryAdopt", "adopts a DigitalOcean registry by name; devtools:registryAddress is another registry"),
    ("adopt with a tier", "prod", {"registryAdopt": "true", "registryTier": "basic"}, "devtools:registryTier",
     "an adopted registry keeps its own tier"),
    ("DOCR as an address", "prod", {"registryAddress": "registry.digitalocean.com"}, "devtools:registryAddress",
     "set devtools:registryName, and devtools:registryAdopt true to use the account's existing registry"),
    ("platform", "prod", {"buildPlatform": "windows/amd64"}, "devtools:buildPlatform", "linux/amd64"),
    ("port prefix", "prod", {"hostPortPrefix": "700"}, "devtools:hostPortPrefix", "an integer 10-99"),
    ("prometheus url", "prod", {"prometheusUrl": "localhost:9090"}, "devtools:prometheusUrl", "an http(s) URL"),
    ("app secret name", "prod", {"appSecrets": {"langfuse-key": "x"}}, "devtools:appSecrets.langfuse-key",
     "UPPER_CASE"),
    ("app secret a container cannot hold", "prod", {"appSecrets": {"PASS": "hunter2\u0000"}},
     "devtools:appSecrets.PASS", "NUL character"),
    ("app secret with a reserved name", "prod", {"appSecrets": {"CICD_IMAGE": "x"}}, "devtools:appSecrets.CICD_IMAGE",
     "reserved for the release itself"),
    ("unknown key", "prod", {"hostcount": "2", "liveColour": "blue"}, "devtools:liveColour",
     "did you mean devtools:liveColor?"),
    ("reserved ip with two hosts", "prod", {"traffic": "reservedIp", "hostCount": "2"}, "devtools:hostCount",
     "a reserved IP points at one droplet"),
    ("local proxy on droplets", "prod", {"traffic": "localProxy"}, "devtools:traffic", "localProxy is the local"),
    ("flip on a stack without traffic", "blue", {"liveColor": "blue"}, "devtools:liveColor", "flip on the stack"),
    ("standby from a snapshot", "blue", {"fromSnapshot": "true"}, "devtools:fromSnapshot",
     "retired: standbys boot the base image (devtools:dropletImage) with cloud-init, like the primary"),
    ("follow itself", "prod", {"release": "prod"}, "devtools:prodStack", "cannot follow itself"),
    ("no host key", "prod", {"sshHostPrivateKey": None}, "devtools:sshHostPrivateKey",
     "not set: droplets get their SSH host key from the stack, so the rollout and ops.cli can pin it: run "
     "`python -m ops.cli hostkey --stack prod`"),
    ("host key with a passphrase", "prod", {"sshHostPrivateKey": ENCRYPTED_PRIVATE_KEY},
     "devtools:sshHostPrivateKey", "[secret] is not allowed: an unencrypted OpenSSH private key (`python -m ops.cli "
     "hostkey` makes one): it is protected by a passphrase"),
    ("pinned key of another host key", "prod", {"sshHostKey": ECDSA_PUBLIC_KEY}, "devtools:sshHostKey",
     "not the public half of devtools:sshHostPrivateKey"),
    ("host private key on an existing host", "local", {"sshHostPrivateKey": HOST_PRIVATE_KEY},
     "devtools:sshHostPrivateKey", "only droplets get their host key from cloud-init"),
    ("existing without hosts", "local", {"existingHosts": "[]"}, "devtools:existingHosts", "at least one"),
    ("existing host port", "local", {"existingHosts": '["127.0.0.1:99999"]'}, "devtools:existingHosts", "1-65535"),
    ("existing with a load balancer", "local", {"traffic": "loadBalancer"}, "devtools:traffic", "needs droplets"),
    ("existing without registry", "local", {"registryAddress": None}, "devtools:registryAddress", "existing registry"),
    ("key file missing", "local", {"sshPrivateKey": None, "sshPrivateKeyPath": "/nonexistent/id"},
     "devtools:sshPrivateKeyPath", "a readable private key file"),
    ("token in plain text", "prod:token", {}, "digitalocean:token", "DIGITALOCEAN_TOKEN"),
    ("data droplet size", "prod", {"dataDropletSize": "Small"}, "devtools:dataDropletSize",
     "a droplet size slug such as s-1vcpu-2gb"),
    ("data volume size", "prod", {"dataVolumeSize": "0"}, "devtools:dataVolumeSize", "an integer 1-16384"),
    ("data port prefix", "prod", {"dataPortPrefix": "8"}, "devtools:dataPortPrefix", "two digits such as 80 or 83"),
    ("data network", "local", {"dataNetwork": "devtools data"}, "devtools:dataNetwork", "a docker network name"),
    ("data backups kept", "prod", {"dataBackupKeep": "0"}, "devtools:dataBackupKeep", "an integer 1-100"),
    ("data ports of the colors", "local", {"dataPortPrefix": "81"}, "devtools:dataPortPrefix",
     "81 is this stack's devtools:hostPortPrefix too: on an existing host the data tier shares the docker engine "
     "with the colors, so its ports would collide; pick another prefix (the local stand-in: colors 81 and 82, the "
     "data tier 83)"),
    ("release strategy", "prod", {"releaseStrategy": "canary"}, "devtools:releaseStrategy",
     "one of blueGreen, inPlace"),
    ("analysis interval", "prod", {"analysisInterval": "0"}, "devtools:analysisInterval", "an integer 1-600"),
    ("analysis error ratio as a percentage", "prod", {"analysisMaxErrorRatio": "5%"},
     "devtools:analysisMaxErrorRatio", '"5%" is not allowed: a number 0-1'),
    ("analysis p95 out of range", "prod", {"analysisMaxP95Seconds": "61"}, "devtools:analysisMaxP95Seconds",
     "61.0 is not allowed: a number 0-60"),
    ("analysis prometheus url", "prod", {"analysisPrometheusUrl": "127.0.0.1:9390"},
     "devtools:analysisPrometheusUrl", "an http(s) URL"),
    ("slo error ratio as a percentage", "prod", {"sloErrorRatio": "1%"}, "devtools:sloErrorRatio",
     '"1%" is not allowed: a number 0-1'),
    ("slo rollout success above 1", "prod", {"sloRolloutSuccess": "1.5"}, "devtools:sloRolloutSuccess",
     "1.5 is not allowed: a number 0-1"),
    ("slo pull threshold between buckets", "prod", {"sloPullP95Seconds": "45"}, "devtools:sloPullP95Seconds",
     "45.0 is not allowed: one of the pull histogram's bucket bounds: 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300"),
    ("slo pull threshold past the last bucket", "prod", {"sloPullP95Seconds": "600"}, "devtools:sloPullP95Seconds",
     "600.0 is not allowed: a number 0.5-300"),
    ("slo trace coverage negative", "prod", {"sloTraceCoverage": "-0.1"}, "devtools:sloTraceCoverage",
     "a number 0-1"),
    ("slo window without a unit", "prod", {"sloWindow": "7"}, "devtools:sloWindow",
     "a Prometheus duration longer than 0 such as 7d, 30d or 1w"),
    ("slo window of nothing", "prod", {"sloWindow": "0d"}, "devtools:sloWindow", "a Prometheus duration longer"),
    ("signatures without a public key", "prod", {"signingPublicKeys": "[]"}, "devtools:signingPublicKeys",
     "empty while devtools:requireSignedImages is true"),
    ("a build without the signing key", "prod", {"signingKey": None}, "devtools:signingKey",
     "not set while devtools:requireSignedImages is true and stack prod builds images"),
    ("a signing key of another kind", "prod", {"signingKey": SSH_PRIVATE_KEY}, "devtools:signingKey",
     "[secret] is not allowed: an encrypted cosign private key"),
    ("a public key file missing", "blue", {"signingPublicKeys": '["signing/none.pub"]'},
     "devtools:signingPublicKeys", "signing/none.pub: no such file"),
    ("data tier on a follower", "blue", {"dataVolumeSize": "50"}, "devtools:dataVolumeSize",
     "set on stack blue, which does not own the data tier (it reads the data tier of devtools:prodStack prod): set "
     "it on stack prod, remove it here"),
]


def _raw(base: str, overrides: dict[str, Any]) -> tuple[str, dict[str, Any], set[str]]:
    stack, _, variant = base.partition(":")
    if stack == "local":
        return "local", with_overrides(LOCAL, overrides), set(LOCAL_SECRETS)
    raw = dict(PROD)
    if stack == "blue":
        raw = with_overrides(raw, {"color": "blue", "traffic": "none", "release": "prod", "snapshot": None,
                                   "liveColor": None})
    raw = with_overrides(raw, overrides)
    secrets = set(PROD_SECRETS)
    if variant == "plain":
        secrets.discard("devtools:sshPrivateKey")
    if variant == "token":
        secrets.discard("digitalocean:token")
    return stack, raw, secrets


def test_bad_cases_are_distinct_and_many():
    """At least 20 distinct malformed configs, each a different mistake: one rule per case, none counted twice."""
    assert len(BAD) >= 20
    assert len({case[0] for case in BAD}) == len(BAD)


@pytest.mark.parametrize(("case", "base", "overrides", "key", "allowed"), BAD, ids=[c[0] for c in BAD])
def test_bad_value_is_rejected_naming_the_key(case, base, overrides, key, allowed):
    """A bad value must stop the program with the key, the value's problem and what is allowed: a typo in a
    stack file must never become a half-built stack."""
    stack, raw, secrets = _raw(base, overrides)
    with pytest.raises(ConfigError) as err:
        load_config(raw, secrets, stack=stack, project="devtools", commit="1a2b3c4", root=ROOT)
    lines = [p for p in err.value.problems if p.startswith(key)]
    assert lines, f"{case}: no problem names {key}: {err.value.problems}"
    assert any(allowed in p for p in lines), f"{case}: {lines}"


@pytest.mark.parametrize(("case", "base", "overrides", "key", "allowed"), BAD, ids=[c[0] for c in BAD])
def test_bad_config_registers_no_resource(case, base, overrides, key, allowed):
    """Rejection happens before the first resource: the whole program run under mocks registers nothing."""
    stack, raw, secrets = _raw(base, overrides)
    with pytest.raises(Exception, match=key.replace(".", r"\.")) as err:
        run_program(stack, raw, secrets)
    assert type(err.value).__name__ == "RunError"
    assert err.value.registrations == []  # type: ignore[attr-defined]


def test_secret_values_never_in_the_error_text():
    """A rejected secret is named by key only: error text lands in CI logs."""
    raw = with_overrides(PROD, {"appSecrets": {"bad name": SSH_PRIVATE_KEY}})
    with pytest.raises(ConfigError) as err:
        load_config(raw, PROD_SECRETS - {"devtools:appSecrets"}, stack="prod", project="devtools", commit="c",
                    root=ROOT)
    assert "PRIVATE KEY" not in str(err.value)
    assert "devtools:appSecrets holds a secret but is stored in plain text" in str(err.value)


def test_every_problem_is_reported_at_once():
    """Fixing one key at a time through repeated `pulumi up` runs wastes an afternoon: list them all."""
    raw = with_overrides(PROD, {"hostCount": "0", "region": "X", "color": "pink"})
    with pytest.raises(ConfigError) as err:
        load_config(raw, PROD_SECRETS, stack="prod", project="devtools", commit="c", root=ROOT)
    keys = {p.split(":", 2)[1].split(" ")[0] for p in err.value.problems}
    assert {"hostCount", "region", "color"} <= keys


def test_config_is_frozen_and_secrets_hidden_in_repr():
    cfg = make_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.color = "blue"  # type: ignore[misc]
    assert "PRIVATE" not in repr(cfg) and "sk-lf" not in repr(cfg)
    assert cfg.ssh.private_key.value == SSH_PRIVATE_KEY


def test_release_id_defaults_to_the_commit_and_can_be_pinned():
    assert make_config().release.release_id == "1a2b3c4"
    assert make_config(releaseId="2026.11.27-1").release.release_id == "2026.11.27-1"
    pinned = make_config(release="9f8e7d6")
    assert (pinned.release.source, pinned.release.pinned, pinned.builds) == ("pinned", "9f8e7d6", False)


def test_stack_roles():
    prod, blue, local = make_config(), make_blue_config(), make_local_config()
    assert (prod.builds, prod.follows_prod, prod.snapshot, prod.traffic.mode) == (True, False, True, "loadBalancer")
    assert (blue.builds, blue.follows_prod, blue.snapshot, blue.traffic.mode) == (False, True, False, "none")
    assert (local.hosts.provider, local.registry.address, local.traffic.mode) == ("existing", "127.0.0.1:5000",
                                                                                   "localProxy")
    assert [(h.address, h.port) for h in local.hosts.existing] == [("127.0.0.1", 2222)]
    assert (prod.owns_data, blue.owns_data, local.owns_data) == (True, False, True)
    assert make_config("local-blue", LOCAL, LOCAL_SECRETS, color="blue", traffic="none", release="prod",
                       liveColor=None, dataPortPrefix=None).owns_data is False


def test_data_tier_defaults():
    """A data droplet of 2 GB with a 10 GiB volume, published on 80xx (its own droplet), the shared network of an
    existing host, a week of scheduled backups."""
    data = make_config().data
    assert (data.droplet_size, data.volume_size, data.port_prefix, data.network, data.backup_keep) == (
        "s-1vcpu-2gb", 10, "80", "devtools-data", 7)


@pytest.mark.parametrize("line", [DEPLOY_PUBLIC_KEY, ECDSA_PUBLIC_KEY, RSA_PUBLIC_KEY], ids=["ed25519", "ecdsa", "rsa"])
def test_a_real_public_key_is_accepted(line):
    """Keys ssh-keygen writes pass the key check (as the deploy key and as an existing host's pinned key)."""
    assert make_config(sshPublicKey=line).ssh.public_key == line
    assert make_local_config(sshHostKey=line).ssh.host_key == line


def test_droplets_pin_the_public_half_of_the_stacks_host_key():
    """The host key cloud-init installs and the key the rollout and ops.cli pin are one key by construction: the
    pinned public half is derived from the private key, never typed separately."""
    cfg = make_config()
    assert cfg.ssh.host_key == HOST_PUBLIC_KEY
    assert cfg.ssh.login.host_key == HOST_PUBLIC_KEY
    assert cfg.ssh.host_private_key.value == HOST_PRIVATE_KEY
    assert "PRIVATE" not in repr(cfg)
    assert make_config(sshHostKey=HOST_PUBLIC_KEY + " same-key").ssh.host_key == HOST_PUBLIC_KEY


def test_private_key_from_a_file(tmp_path):
    key = tmp_path / "id"
    key.write_text(SSH_PRIVATE_KEY)
    cfg = make_local_config(sshPrivateKey=None, sshPrivateKeyPath=str(key))
    assert cfg.ssh.private_key.value == SSH_PRIVATE_KEY


def test_the_analysis_keys_read_into_their_slice():
    """The analysis after a promotion is configured per stack; unset keys take the table's defaults (what prod
    runs), set ones arrive typed, the numbers as floats from the text Pulumi stores."""
    assert (make_config().release_strategy, make_config().analysis) == ("blueGreen", AnalysisSettings(
        interval=30, count=10, failure_limit=1, max_error_ratio=0.01, max_p95_seconds=0.0, max_restarts=0,
        prometheus_url=None))
    cfg = make_local_config(releaseStrategy="inPlace", analysisInterval="5", analysisCount="3",
                            analysisFailureLimit="0", analysisMaxErrorRatio="0.05", analysisMaxP95Seconds="1.5",
                            analysisMaxRestarts="2", analysisPrometheusUrl="http://127.0.0.1:9390")
    assert (cfg.release_strategy, cfg.analysis) == ("inPlace", AnalysisSettings(
        interval=5, count=3, failure_limit=0, max_error_ratio=0.05, max_p95_seconds=1.5, max_restarts=2,
        prometheus_url="http://127.0.0.1:9390"))


def test_app_secrets_path_adds_a_files_secrets_and_app_secrets_win(tmp_path):
    """The local stacks take the Langfuse stand-in's keys from its 0600 file (appSecretsPath), as sshPrivateKeyPath
    takes the SSH key; a name also in appSecrets keeps appSecrets' value."""
    keys = tmp_path / "keys.env"
    keys.write_text("LANGFUSE_HOST=http://host.docker.internal:9392\nLANGFUSE_PUBLIC_KEY=pk-lf-file\n"
                    "LANGFUSE_SECRET_KEY=sk-lf-file\n")
    cfg = make_local_config(appSecretsPath=str(keys), langfuseHost="http://127.0.0.1:9392")
    assert {k: v.value for k, v in cfg.release.secrets.items()} == {
        "LANGFUSE_HOST": "http://host.docker.internal:9392", "LANGFUSE_PUBLIC_KEY": "pk-lf-file",
        "LANGFUSE_SECRET_KEY": "sk-lf-file"}
    assert cfg.release.validator.langfuse_host == "http://127.0.0.1:9392"
    assert cfg.release.validator.trace_coverage_min == 0.9
    stricter = make_local_config(appSecretsPath=str(keys), langfuseHost="http://127.0.0.1:9392", sloTraceCoverage="1")
    assert stricter.release.validator.trace_coverage_min == stricter.slo.trace_coverage_min == 1.0
    prod = make_config(appSecretsPath=str(keys))
    assert prod.release.secrets["LANGFUSE_SECRET_KEY"].value == LANGFUSE_SECRET
    assert prod.release.secrets["LANGFUSE_HOST"].value == "http://host.docker.internal:9392"


def test_an_unreadable_app_secrets_path_is_named_without_values(tmp_path):
    with pytest.raises(ConfigError) as err:
        make_local_config(appSecretsPath=str(tmp_path / "missing.env"))
    assert "devtools:appSecretsPath" in str(err.value) and "No such file" in str(err.value)
    bad = tmp_path / "bad.env"
    bad.write_text("lower-case=sk-lf-hidden-value\n")
    with pytest.raises(ConfigError) as err:
        make_local_config(appSecretsPath=str(bad))
    assert "sk-lf-hidden-value" not in str(err.value)


def test_langfuse_host_must_be_a_url():
    with pytest.raises(ConfigError, match="devtools:langfuseHost"):
        make_local_config(langfuseHost="127.0.0.1:9392")
