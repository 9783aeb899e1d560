"""Fixtures that install the chart `helm/ics-validator` into the test control plane.

`chart_releases` installs with the real `helm` and the admin kubeconfig into the
per-test namespace, creates the extra namespaces a test needs (consumer
namespaces), and at the end uninstalls every release (the chart has
cluster-scoped objects that namespace deletion would leave behind) and deletes
those namespaces.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.conftest import create_namespace
from tests.support.helm import NO_VALUES, Permission, Values, get_manifest, install, run_helm
from tests.support.kube import ControlPlane
from tests.support.polling import any_error, wait_until


@dataclass
class ChartReleases:
    plane: ControlPlane
    namespace: str
    releases: list[tuple[str, str]] = field(default_factory=list)
    extra_namespaces: list[str] = field(default_factory=list)

    def install(
        self,
        v: Values = NO_VALUES,
        *,
        release: str = "ics",
        namespace: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> str:
        """helm upgrade --install; returns helm's output (with NOTES)."""
        ns = namespace or self.namespace
        if (ns, release) not in self.releases:
            self.releases.append((ns, release))
        return install(self.plane.kubeconfig, ns, v, release=release, extra=extra)

    def manifest(self, release: str = "ics", namespace: str | None = None) -> list[dict[str, Any]]:
        return get_manifest(self.plane.kubeconfig, namespace or self.namespace, release)

    def new_namespace(self, suffix: str, labels: dict[str, str] | None = None) -> str:
        """A further namespace for this test (name derived from the test's), deleted after."""
        name = f"{self.namespace[: 62 - len(suffix)]}-{suffix}"
        create_namespace(self.plane.admin_client(), name)
        if labels:
            label(self.plane.admin_client(), name, labels)
        self.extra_namespaces.append(name)
        return name

    def wait_for_rbac(self, sa_namespace: str, sa_name: str, granted: set[Permission]) -> None:
        """Until the API server's authorizer has seen the new Roles (its informers lag a
        little behind a write, more on a busy machine): every grant reviews as allowed."""
        authz = client.AuthorizationV1Api(self.plane.service_account_client(sa_namespace, sa_name))

        def allowed(p: Permission) -> bool:
            ns, group, resource, verb, name = p
            review = authz.create_self_subject_access_review(
                client.V1SelfSubjectAccessReview(
                    spec=client.V1SelfSubjectAccessReviewSpec(
                        resource_attributes=client.V1ResourceAttributes(
                            namespace=None if ns == "*" else ns,
                            group=group,
                            resource=resource,
                            verb=verb,
                            name=name or None,
                        )
                    )
                )
            )
            return bool(review.status.allowed)

        wait_until(
            "the new Roles to reach the authorizer",
            lambda: all(allowed(p) for p in sorted(granted)),
            timeout=30,
            interval=0.1,
            not_yet=any_error,
        )

    def uninstall(self) -> None:
        """helm uninstall every release of the test (its namespaces stay)."""
        for ns, release in reversed(self.releases):
            run_helm(
                ["uninstall", release, "--namespace", ns, "--wait"],
                kubeconfig=self.plane.kubeconfig,
            )
        self.releases.clear()

    def lb_namespace(self, namespace: str | None = None) -> str:
        """The chart's default LoadBalancer namespace for a release in `namespace`."""
        return lb_namespace(namespace or self.namespace)

    def cleanup(self) -> None:
        released = {ns for ns, _ in self.releases}
        self.uninstall()
        core = client.CoreV1Api(self.plane.admin_client())
        # The chart's own LoadBalancer namespace outlives an uninstall with keepOnUninstall.
        for ns in [*self.extra_namespaces, *sorted(lb_namespace(r) for r in released)]:
            with contextlib.suppress(ApiException):
                core.delete_namespace(ns)


def lb_namespace(release_namespace: str) -> str:
    """`loadBalancer.namespace` left empty: `<release namespace>-lb` (at most 63 characters)."""
    return f"{release_namespace}-lb"[:63].rstrip("-")


def label(api: client.ApiClient, namespace: str, labels: dict[str, str]) -> None:
    client.CoreV1Api(api).patch_namespace(namespace, {"metadata": {"labels": labels}})


# Pod Security Admission: pods violating the `restricted` standard are refused.
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


@pytest.fixture
def chart_releases(control_plane: ControlPlane, namespace: str) -> Iterator[ChartReleases]:
    releases = ChartReleases(control_plane, namespace)
    try:
        yield releases
    finally:
        releases.cleanup()
