"""What registry-gc keeps and deletes, on a fixed set of releases: the plan's exact text, each reason to keep, and
every history it refuses to guess about."""

from __future__ import annotations

import pytest

from ops import registry_docr as docr
from ops import registry_gc_plan as gc
from ops.operator_host import CliError
from ops.registry_gc import listed_stacks
from ops.registry_gc_plan import Blob, Manifest, Wanted

REG = "127.0.0.1:5000"


def d(c: str) -> str:
    return "sha256:" + c * 64


def ref(repo: str, c: str) -> str:
    return f"{REG}/gcdemo/{repo}@{d(c)}"


def image(repo: str, c: str, tags: tuple[str, ...], created: str, *blobs: Blob) -> Manifest:
    return Manifest(f"gcdemo/{repo}", d(c), tags, (Blob(d("c" + c)[:71], 100), *blobs), (), created)


BASE = image("cicd", "0", ("r1",), "2026-11-01T00:00:00Z", Blob(d("e"), 5000))
DOCS = {f"r{n}": image("documentation", str(n), (f"r{n}",), f"2026-11-0{n}T00:00:00Z", Blob(d(f"{n}")[:70] + "ff",
                                                                                           1000 * n))
        for n in range(1, 6)}
SIG_R4 = Manifest("gcdemo/documentation", d("a"), (f"sha256-{'4' * 64}.sig",), (Blob(d("b"), 300),))
SIG_R1 = Manifest("gcdemo/documentation", d("f"), (f"sha256-{'1' * 64}.sig",), (Blob(d("9"), 250),))
CACHE = Manifest("gcdemo/documentation", d("8"), ("buildcache",), (Blob(d("7"), 9000),))
MANIFESTS = [BASE, *DOCS.values(), SIG_R4, SIG_R1, CACHE]


def release(n: int) -> dict[str, str]:
    return {"cicd": ref("cicd", "0"), "documentation": ref("documentation", str(n))}


def wanted() -> list[Wanted]:
    prod = {"releases": {f"r{n}": {"id": f"r{n}", "images": release(n)} for n in (4, 5)},
            "release": {"id": "r5", "images": release(5)}}
    blue = {"release": {"id": "r3", "images": release(3)}}
    host = {"current": "r5", "previous": "r2", "active": "r5", "pending": None,
            "release_images": {"r2": release(2), "r5": release(5)}}
    return [*gc.wanted_from_stack("gcprod", prod), *gc.wanted_from_stack("gcblue", blue),
            *gc.wanted_from_host("stand-in:gcdemo", host)]


def test_the_plan_on_a_fixed_set_of_releases_reads_exactly_so() -> None:
    """Rule: the operator sees what is kept and why before anything goes. Risk: a plan that says 'delete 2' and
    leaves the reader to find out whether a rollback target is among them."""
    p = gc.plan(REG, ["gcdemo/cicd", "gcdemo/documentation"], MANIFESTS, wanted(), keep_recent=0)
    assert gc.render(p) == f"""registry 127.0.0.1:5000: 9 manifests in 2 repositories
releases kept (4), who can still ask for them:
  r2  host stand-in:gcdemo previous
  r3  stack gcblue release
  r4  stack gcprod history
  r5  stack gcprod history, stack gcprod release, host stand-in:gcdemo current, host stand-in:gcdemo active
also kept: 1 for build cache
also kept: 1 for signatures and attestations
delete 2 of 9 manifests, freeing about 1.4 kB (the blobs only they reference, as the registry reports their sizes):
  gcdemo/documentation@sha256:111111111111  r1
  gcdemo/documentation@sha256:ffffffffffff  sha256-{'1' * 64}.sig"""
    assert [m.digest for m in p.delete] == [d("1"), d("f")]
    assert p.freed == 100 + 1000 + 250  # r1's config and layer, its signature's blob; not the shared base
    assert p.missing == ()


def test_the_newest_images_of_each_repository_are_kept_whatever_the_histories_say() -> None:
    """Risk: an image pushed by a running build, not recorded by any stack yet, deleted under it."""
    only_r5 = [w for w in wanted() if w.release == "r5"]
    p = gc.plan(REG, ["gcdemo/cicd", "gcdemo/documentation"], MANIFESTS, only_r5, keep_recent=2)
    assert sorted(m.tags[0] for m in p.delete) == ["r1", "r2", "r3", f"sha256-{'1' * 64}.sig"]  # r4: second newest
    assert p.kept == {"build cache": 1, "signatures and attestations": 1, "the 2 newest of each repository": 1}


def test_an_index_keeps_its_children_and_a_deleted_one_takes_its_children_along() -> None:
    child_kept, child_gone = (Manifest("gcdemo/cicd", d(c), (), (Blob(d(c)[:70] + "00", 10),)) for c in "23")
    kept = Manifest("gcdemo/cicd", d("4"), ("r4",), (), (child_kept.digest,))
    gone = Manifest("gcdemo/cicd", d("5"), ("old",), (), (child_gone.digest,))
    p = gc.plan(REG, ["gcdemo/cicd"], [kept, gone, child_kept, child_gone],
                [Wanted("r4", "stack prod history", {"cicd": f"{REG}/gcdemo/cicd@{d('4')}"})], keep_recent=0)
    assert [m.digest for m in p.delete] == [child_gone.digest, gone.digest]
    assert p.kept == {"index children": 1}


def test_images_of_another_registry_are_ignored_and_wanted_images_the_registry_lacks_are_named() -> None:
    elsewhere = Wanted("x1", "stack local history", {"cicd": f"10.0.0.1:5000/gcdemo/cicd@{d('0')}"})
    lost = Wanted("r9", "stack gcprod history", {"cicd": ref("cicd", "9")})
    p = gc.plan(REG, ["gcdemo/cicd", "gcdemo/documentation"], MANIFESTS, [*wanted(), elsewhere, lost], keep_recent=0)
    assert "x1" not in p.releases
    assert p.missing == (f"{ref('cicd', '9')} (cicd of r9)",)
    assert f"not in the registry (a rollback to these cannot pull): {ref('cicd', '9')} (cicd of r9)" in gc.render(p)


def test_nothing_named_in_this_registry_is_refused_rather_than_deleting_everything() -> None:
    with pytest.raises(gc.HistoryError, match=r"no stack and no host names a release whose images live in "
                                              r"127\.0\.0\.1:5000: refusing to delete everything"):
        gc.plan(REG, ["gcdemo/cicd"], [BASE], [], keep_recent=3)


@pytest.mark.parametrize(("outputs", "message"), [
    ({"releases": "r4"}, "stack gcprod's output releases is not a map of release id → release"),
    ({"releases": {"r4": {"id": "r4", "images": {"cicd": "gcdemo/cicd:r4"}}}},
     "stack gcprod's output releases: release 'r4' has no images map pinned by digest"),
    ({"builds": {"b1": {"id": "b1"}}}, "stack gcprod's output builds: release 'b1' has no images map"),
    ({"release": {"images": {}}}, "stack gcprod's output release has no release id"),
    ({"data": {"release": "d1"}}, "stack gcprod's output data.release has no release id"),
])
def test_a_history_that_cannot_be_read_stops_everything_naming_the_stack(outputs: dict[str, object],
                                                                         message: str) -> None:
    with pytest.raises(gc.HistoryError, match=message):
        gc.wanted_from_stack("gcprod", outputs)


def test_a_stack_never_updated_records_nothing_and_its_data_release_is_kept() -> None:
    assert gc.wanted_from_stack("fresh", {}) == []
    found = gc.wanted_from_stack("prod", {"data": {"release": {"id": "d1", "images": {"state": ref("state", "1")}}}})
    assert found == [Wanted("d1", "stack prod data release", {"state": ref("state", "1")})]


def test_a_host_that_cannot_be_asked_stops_everything_naming_the_host() -> None:
    with pytest.raises(gc.HistoryError, match=r"host prod-1:green cannot be asked which releases it keeps \(ssh "):
        gc.wanted_from_host("prod-1:green", {"error": "ssh 10.0.0.2:22: exit 255", "services": {}})
    older = {"current": "r1", "previous": "r0", "intended": release(1), "services": {}}  # no release_images
    with pytest.raises(gc.HistoryError, match="host prod-1:green's previous release r0 is in no stack's records and "
                                              "its host agent does not report its images"):
        gc.wanted_from_host("prod-1:green", older)
    assert [(w.release, w.images) for w in gc.wanted_from_host("prod-1:green", older, {"r0": release(2)})] == [
        ("r1", release(1)), ("r0", release(2))]
    pending = {"current": "r1", "pending": {"release": "r2"}, "release_images": {"r1": release(1), "r2": release(2)}}
    assert [(w.release, w.why) for w in gc.wanted_from_host("h:p", pending)] == [("r1", "host h:p current"),
                                                                                ("r2", "host h:p pending")]


def test_digitalocean_api_requests_name_the_registry_and_encode_the_repository() -> None:
    assert docr.manifests_path("devtools", "app/cicd", 2) == \
        "/v2/registry/devtools/repositories/app%2Fcicd/digests?per_page=100&page=2"
    assert docr.delete_path("devtools", "cicd", d("1")) == \
        f"/v2/registry/devtools/repositories/cicd/digests/{d('1')}"
    assert docr.repositories_path("devtools", 1) == "/v2/registry/devtools/repositoriesV2?per_page=100&page=1"
    assert docr.gc_path("devtools") == "/v2/registry/devtools/garbage-collection"
    assert docr.gc_type(untagged=False) == "unreferenced blobs only"  # an untagged manifest may be an index's child
    assert docr.gc_type(untagged=True) == "untagged manifests and unreferenced blobs"  # --include-untagged
    item = {"digest": d("1"), "tags": ["r2", "r1"], "updated_at": "2026-11-02T00:00:00Z", "compressed_size_bytes": 9,
            "blobs": [{"digest": d("2"), "compressed_size_bytes": 7}]}
    assert docr.manifest_of("cicd", item) == Manifest("cicd", d("1"), ("r1", "r2"), (Blob(d("2"), 7),), (),
                                                      "2026-11-02T00:00:00Z")


def test_a_manifest_with_many_tags_names_three_and_counts_the_rest() -> None:
    many = Manifest("gcdemo/cicd", d("6"), ("a", "b", "c", "d", "e"))
    p = gc.plan(REG, ["gcdemo/cicd"], [BASE, many], wanted(), keep_recent=0)
    assert gc.render(p).endswith("\n  gcdemo/cicd@sha256:666666666666  a, b, c and 2 more")


def test_the_stack_list_is_refused_while_any_stack_is_being_updated() -> None:
    """Rule: never during a deploy. Risk: the images an update just pushed are in no stack's outputs yet."""
    assert listed_stacks('[{"name": "org/devtools/prod"}, {"name": "blue", "updateInProgress": false}]') == [
        "prod", "blue"]
    with pytest.raises(CliError, match="stack blue is being updated now: its new images are not recorded yet"):
        listed_stacks('[{"name": "prod"}, {"name": "blue", "updateInProgress": true}]')
    with pytest.raises(CliError, match="printed no list of stacks"):
        listed_stacks("error: no backend")
