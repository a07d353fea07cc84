"""IdentityCache: one build per object, by identity, bounded."""

from __future__ import annotations

from midika.identity_cache import IdentityCache


class Thing:
    """Equal to every other Thing: the cache must tell them apart by identity alone."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Thing)

    def __hash__(self) -> int:
        return 0


def test_builds_once_per_object_and_tells_equal_objects_apart() -> None:
    built: list[Thing] = []

    def build(thing: Thing) -> int:
        built.append(thing)
        return len(built)

    cache = IdentityCache(build, max_entries=10)
    first, second = Thing(), Thing()
    assert [cache(first), cache(first), cache(second), cache(first)] == [1, 1, 2, 1]
    assert built == [first, second] and built[0] is first and built[1] is second


def test_keeps_at_most_max_entries_dropping_the_oldest() -> None:
    builds = 0

    def build(_thing: Thing) -> int:
        nonlocal builds
        builds += 1
        return builds

    cache = IdentityCache(build, max_entries=2)
    things = [Thing(), Thing(), Thing()]
    for thing in things:
        cache(thing)
    assert cache(things[2]) == 3  # still kept
    assert cache(things[0]) == 4  # dropped when the third came: built again
