"""The node-resource watch wakes the loop for a spec or ownership change, not for status."""

from __future__ import annotations

from typing import Any

from discovery.operator_watch import Fingerprint, changed, fingerprint
from discovery.operators import OWNED_PEERS_ANNOTATION


def obj(generation: int, ours: str | None = None, uid: str = "u1") -> dict[str, Any]:
    meta: dict[str, Any] = {"uid": uid, "generation": generation, "resourceVersion": "1"}
    if ours is not None:
        meta["annotations"] = {OWNED_PEERS_ANNOTATION: ours, "other": "x"}
    return {"metadata": meta, "status": {"phase": "Complete"}}


def test_spec_annotation_appearance_and_deletion_wake_status_does_not() -> None:
    seen: dict[str, Fingerprint] = {}
    assert changed(seen, "ADDED", obj(1))
    status_only = obj(1)
    status_only["status"] = {"phase": "Progressing"}
    assert not changed(seen, "MODIFIED", status_only)
    assert changed(seen, "MODIFIED", obj(2))  # someone edited the spec
    assert changed(seen, "MODIFIED", obj(2, "aa"))  # our annotation changed
    assert not changed(seen, "MODIFIED", obj(2, "aa"))
    assert changed(seen, "DELETED", obj(2, "aa"))
    assert not changed(seen, "DELETED", obj(2, "aa"))
    assert seen == {}


def test_malformed_objects_are_ignored() -> None:
    seen: dict[str, Fingerprint] = {}
    assert fingerprint({"metadata": "nope"}) is None
    assert not changed(seen, "ADDED", {"metadata": {"name": "no-uid"}})
    assert not changed(seen, "ADDED", {})
    assert fingerprint(obj(3, "bb")) == ("u1", ("3", "bb"))
