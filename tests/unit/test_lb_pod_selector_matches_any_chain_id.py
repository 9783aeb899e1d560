"""Any chain ID finds its pods: hash label for the server, exact annotation checked here."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from lbmanager.consumer_pods import (
    POD_KEY_ANNOTATION,
    POD_KEY_HASH_LABEL,
    PodIndex,
    PodInfo,
    keyed_pod_selector,
    pod_annotations_for_key,
    pod_labels_for_key,
    pod_scope,
    selector_matches,
)
from lbmanager.naming import is_label_value
from lbmanager.pods import PodChange
from lbmanager.types import ChainExposure, ChainKey, PodSelector
from tests.support.lb_plan import ch


def pod(name: str, key: str, namespace: str = "ns", **overrides: dict[str, str]) -> PodInfo:
    return PodInfo(
        namespace=namespace,
        name=name,
        uid=f"uid-{name}",
        ips=("10.0.0.1",),
        ready=True,
        terminating=False,
        phase="Running",
        labels=overrides.get("labels", pod_labels_for_key(key)),
        annotations=overrides.get("annotations", pod_annotations_for_key(key)),
    )


@given(st.text(min_size=1, max_size=100))
def test_every_chain_id_matches_its_own_pods(chain_id: str) -> None:
    sel = keyed_pod_selector(chain_id)
    assert all(is_label_value(v) for v in sel.labels.values())
    assert selector_matches(sel, pod("p", chain_id))


@given(st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60))
def test_other_chains_pods_never_match(a: str, b: str) -> None:
    if a != b:
        assert not selector_matches(keyed_pod_selector(a), pod("p", b))


def test_a_copied_hash_label_alone_does_not_match() -> None:
    odd = "Cosmos_Hub/test chain:ümlaut"
    decoy = pod("decoy", odd, annotations={POD_KEY_ANNOTATION: "someone-else"})
    unannotated = pod("bare", odd, annotations={})
    sel = keyed_pod_selector(odd)
    assert not selector_matches(sel, decoy)
    assert not selector_matches(sel, unannotated)
    assert selector_matches(sel, pod("real", odd))


def test_namespace_restricts_matching() -> None:
    assert not selector_matches(keyed_pod_selector("c", "other"), pod("p", "c", "ns"))
    assert selector_matches(keyed_pod_selector("c", None), pod("p", "c", "ns"))


def test_a_namespace_set_limits_an_all_namespaces_selector() -> None:
    listed = replace(keyed_pod_selector("c", None), namespaces=frozenset({"team-a", "team-b"}))
    assert selector_matches(listed, pod("p", "c", "team-b"))
    assert not selector_matches(listed, pod("p", "c", "ns"))
    # One named namespace wins over the set (the set only narrows "every namespace").
    one = replace(keyed_pod_selector("c", "ns"), namespaces=frozenset({"team-a"}))
    assert selector_matches(one, pod("p", "c", "ns"))
    assert hash(listed) != hash(keyed_pod_selector("c", None))
    index = PodIndex([pod("a", "c", "team-a"), pod("x", "c", "ns")])
    assert [p.name for p in index.matching(listed)] == ["a"]


def test_index_finds_the_same_pods_as_a_scan() -> None:
    ps = [pod(f"p{i}", f"chain-{i % 3}", f"ns{i % 2}") for i in range(12)]
    index = PodIndex(ps)
    for key in ("chain-0", "chain-1", "chain-2", "none"):
        for ns in (None, "ns0"):
            sel = keyed_pod_selector(key, ns)
            assert index.matching(sel) == tuple(
                sorted(
                    (p for p in ps if selector_matches(sel, p)), key=lambda p: (p.namespace, p.name)
                )
            )


def test_scope_is_one_watch_covering_every_chain() -> None:
    same_ns = [ch("a", 1), ch("b", 2)]
    same_ns = [
        ChainExposure(c.key, c.ports, keyed_pod_selector(c.key, "consumers")) for c in same_ns
    ]
    scope = pod_scope(same_ns)
    assert scope is not None
    assert (scope.namespace, scope.label_selector) == ("consumers", POD_KEY_HASH_LABEL)
    mixed = [*same_ns, ch("c", 3)]  # all namespaces
    scope = pod_scope(mixed)
    assert scope is not None
    assert scope.namespace is None
    custom = ChainExposure(ChainKey("d"), (), PodSelector(labels={"app": "gaia"}))
    scope = pod_scope([*mixed, custom])
    assert scope is not None
    assert scope.label_selector == ""
    assert pod_scope([]) is None


def test_pod_change_equality_ignores_nothing_relevant() -> None:
    a = pod("p", "c")
    b = PodInfo(**{**a.__dict__, "ips": ("10.0.0.2",)})
    assert a != b
    assert PodChange(a, b) != PodChange(a, a)
