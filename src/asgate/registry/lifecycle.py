"""Liveness of a service instance as data: states, events, one transition table (style habit 5).

An instance promises a heartbeat every ``heartbeatPeriod`` seconds. After ``missed_heartbeats``
periods without one it is SUSPENDED: no longer discovered, no longer proxied to. A heartbeat makes it
REGISTERED again; after a further ``removal_grace`` seconds without one it is REMOVED. Deadlines are
absolute times stored with the instance, so they survive restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    REGISTERED = "REGISTERED"
    SUSPENDED = "SUSPENDED"
    REMOVED = "REMOVED"


class Event(StrEnum):
    HEARTBEAT = "heartbeat"
    DEADLINE = "deadline"
    DEREGISTER = "deregister"


TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.REGISTERED, Event.HEARTBEAT): State.REGISTERED,
    (State.SUSPENDED, Event.HEARTBEAT): State.REGISTERED,
    (State.REGISTERED, Event.DEADLINE): State.SUSPENDED,
    (State.SUSPENDED, Event.DEADLINE): State.REMOVED,
    (State.REGISTERED, Event.DEREGISTER): State.REMOVED,
    (State.SUSPENDED, Event.DEREGISTER): State.REMOVED,
}


class TransitionError(ValueError):
    pass


def transition(state: State, event: Event) -> State:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise TransitionError(f"no transition from {state} on {event}") from None


@dataclass(frozen=True)
class Liveness:
    missed_heartbeats: int = 3
    removal_grace: float = 60.0

    def deadlines(self, heartbeat_at: float, period: int) -> tuple[float, float]:
        """(suspend_at, remove_at) after a heartbeat at ``heartbeat_at``."""
        suspend_at = heartbeat_at + period * self.missed_heartbeats
        return suspend_at, suspend_at + self.removal_grace

    def reprieve(
        self, started_at: float, period: int, suspend_at: float, remove_at: float
    ) -> tuple[float, float]:
        """Deadlines after the registry (re)starts at ``started_at``: an instance could not heartbeat
        while the registry was down, so it gets ``missed_heartbeats`` periods from the start again."""
        fresh_suspend, fresh_remove = self.deadlines(started_at, period)
        return max(suspend_at, fresh_suspend), max(remove_at, fresh_remove)


def due(state: State, now: float, suspend_at: float, remove_at: float) -> Event | None:
    """The event a sweep at ``now`` applies to an instance, if any."""
    if state is State.REGISTERED and now >= suspend_at:
        return Event.DEADLINE
    if state is State.SUSPENDED and now >= remove_at:
        return Event.DEADLINE
    return None
