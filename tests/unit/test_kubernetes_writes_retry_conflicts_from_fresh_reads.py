"""`retry_on_conflict`: the one optimistic-concurrency loop every Kubernetes writer uses."""

from __future__ import annotations

import pytest

from lbmanager.errors import (
    ConflictRetriesExhausted,
    KubernetesConflict,
    KubernetesUnavailable,
)
from lbmanager.kube import retry_on_conflict


def test_each_conflict_leads_to_a_new_attempt_that_can_read_again() -> None:
    seen: list[int] = []

    def attempt(n: int) -> str:
        seen.append(n)
        if n < 2:
            raise KubernetesConflict("PUT /api/v1/x", "changed since read")
        return f"written on attempt {n}"

    assert retry_on_conflict("ConfigMap ns/x", attempt, base=0.0) == "written on attempt 2"
    assert seen == [0, 1, 2]


def test_endless_conflicts_end_in_a_transient_error_naming_the_object() -> None:
    calls: list[int] = []

    def attempt(n: int) -> None:
        calls.append(n)
        raise KubernetesConflict("PUT /api/v1/x", "changed since read")

    with pytest.raises(ConflictRetriesExhausted) as info:
        retry_on_conflict("ConfigMap ns/x", attempt, attempts=4, base=0.0)
    assert calls == [0, 1, 2, 3]
    assert info.value.transient
    assert "ConfigMap ns/x" in str(info.value)
    assert "4 attempts" in str(info.value)


def test_any_other_error_ends_the_loop_at_once() -> None:
    calls: list[int] = []

    def attempt(n: int) -> None:
        calls.append(n)
        raise KubernetesUnavailable("PUT /api/v1/x", "connection refused")

    with pytest.raises(KubernetesUnavailable):
        retry_on_conflict("ConfigMap ns/x", attempt, base=0.0)
    assert calls == [0]
