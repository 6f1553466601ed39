"""Steps shared by several features."""
from __future__ import annotations

from pytest_bdd import given

from suites.hostset import HostSet


@given("the hosts of the target", target_fixture="hostset")
def hostset(golive) -> HostSet:  # type: ignore[no-untyped-def]
    return HostSet.from_target(golive.target)
