"""A route's plan from the registry's answer, and how a route takes it: the version answering now,
the one it moves to and when; a process that missed a move entirely is put right by its next read."""

from __future__ import annotations

from datetime import UTC, datetime

from app.core.registry import Resolution
from app.serving.routes import Plan, Route, Target

NOW = 1_000_000.0


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def target(version: int) -> Target:
    return Target(version, servable=None)  # type: ignore[arg-type] - what a route does never touches the weights


def test_a_pending_move_answers_from_the_previous_version_until_its_moment():
    moving = Resolution("digits", "production", 2, "mdl_b", at(NOW + 2), previous=(1, "mdl_a"))
    assert Plan.of(moving, NOW) == Plan((1, "mdl_a"), (2, "mdl_b"), NOW + 2)
    assert Plan.of(moving, NOW + 2) == Plan((2, "mdl_b"))  # from its moment on, the new version alone
    assert Plan.of(Resolution("digits", "3", 3, "mdl_c"), NOW) == Plan((3, "mdl_c"))  # a version number never moves


def test_a_route_switches_at_the_moment_and_follows_its_plan():
    route = Route(target(1), NOW, NOW, pending=target(2), effective_at=NOW + 2)
    assert route.answering(NOW + 1.999).version == 1
    assert route.follows(Plan((1, "mdl_a"), (2, "mdl_b"), NOW + 2), NOW + 1)
    assert route.answering(NOW + 2).version == 2 and route.pending is None
    assert route.follows(Plan((2, "mdl_b")), NOW + 2)


def test_a_route_that_missed_a_whole_move_does_not_follow_the_plan_of_the_next():
    # It answers from 1; meanwhile the alias went to 2 and is now moving back to 1: 2 answers until then.
    stale = Route(target(1), NOW, NOW)
    back = Plan.of(Resolution("digits", "production", 1, "mdl_a", at(NOW + 2), previous=(2, "mdl_b")), NOW)
    assert back == Plan((2, "mdl_b"), (1, "mdl_a"), NOW + 2)
    assert not stale.follows(back, NOW)
    stale.take(target(2), target(1), back.effective_at, NOW)
    assert stale.answering(NOW + 1).version == 2 and stale.answering(NOW + 2).version == 1
