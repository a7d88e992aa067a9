"""How the suite is spread over pytest-xdist's processes (`scripts/test`: --dist loadgroup)."""

from __future__ import annotations

import pytest

# Session fixtures every process has anyway, at no cost: the run's broker is found, not started.
EVERY_PROCESS = {"bootstrap_servers"}


def shared_fixture_group(item: pytest.Item) -> str | None:
    """The module, or the session fixture, whose started processes (workers, a broker) this test
    shares with others; None when everything it runs is its own."""
    fixtures = getattr(item, "_fixtureinfo", None)
    for name, defs in (fixtures.name2fixturedefs.items() if fixtures is not None else ()):
        definition = defs[-1]
        if not definition.baseid or name in EVERY_PROCESS:  # pytest's own (tmp_path_factory ...) or the broker
            continue
        if definition.scope == "module":
            return item.module.__name__ if item.module else item.nodeid
        if definition.scope == "session":
            return name
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the marks to put each group on one process
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Integration tests first, the many short unit tests after them to fill the processes' ends.

    Tests sharing started processes (see `shared_fixture_group`) go to one process, so those start
    once; any other test goes to whichever process is free, so one long module's tests do not
    wait for each other."""
    for item in items:
        if (group := shared_fixture_group(item)) is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: item.get_closest_marker("integration") is None)
