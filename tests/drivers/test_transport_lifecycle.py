"""The one transport lifecycle (weft.drivers._core.lifecycle): its tables, its
flags, its refusals, its page, and the memory transport walking through it."""

from __future__ import annotations

import enum
import re
from collections import deque
from pathlib import Path

import pytest

from weft.drivers._core.lifecycle import (
    CONNECTION_TRANSITIONS,
    READ_TRANSITIONS,
    WRITE_TRANSITIONS,
    ConnectionState,
    Event,
    LifecycleError,
    ReadState,
    TransportLifecycle,
    WriteState,
)
from weft.drivers.testing import RecordingProtocol, connect
from weft.protocols.errors import InvalidStateError, WeftError

DOC = Path(__file__).resolve().parents[2] / "docs" / "drivers.md"

State = tuple[WriteState, ReadState, ConnectionState]
Table = dict[enum.Enum, dict[Event, enum.Enum]]

# Each machine: the attribute holding its state, and its table.
MACHINES: dict[str, tuple[str, Table]] = {
    "write": ("write_state", WRITE_TRANSITIONS),  # type: ignore[dict-item]
    "read": ("read_state", READ_TRANSITIONS),  # type: ignore[dict-item]
    "connection": ("connection_state", CONNECTION_TRANSITIONS),  # type: ignore[dict-item]
}
ENUMS: dict[str, type[enum.Enum]] = {"write": WriteState, "read": ReadState, "connection": ConnectionState}


def state_of(lifecycle: TransportLifecycle) -> State:
    return lifecycle.write_state, lifecycle.read_state, lifecycle.connection_state


def replay(events: tuple[Event, ...]) -> TransportLifecycle:
    lifecycle = TransportLifecycle()
    for event in events:
        lifecycle.apply(event)
    return lifecycle


def explore() -> dict[State, tuple[Event, ...]]:
    """Every state the lifecycle can reach from a new transport, with the
    shortest events that reach it (breadth first over every event)."""
    paths: dict[State, tuple[Event, ...]] = {state_of(TransportLifecycle()): ()}
    queue = deque(paths.items())
    while queue:
        _, path = queue.popleft()
        for event in Event:
            try:
                lifecycle = replay((*path, event))
            except LifecycleError:
                continue
            reached = state_of(lifecycle)
            if reached not in paths:
                paths[reached] = (*path, event)
                queue.append((reached, paths[reached]))
    return paths


REACHABLE = explore()


def path_to(machine: str, state: enum.Enum) -> tuple[Event, ...]:
    """The shortest events that put ``machine`` in ``state`` (the others as early as can be)."""
    attribute = MACHINES[machine][0]
    candidates = [path for path in REACHABLE.values() if getattr(replay(path), attribute) is state]
    return min(candidates, key=len)


def table_entries() -> list[tuple[str, enum.Enum, Event, enum.Enum]]:
    return [
        (machine, state, event, target)
        for machine, (_, table) in MACHINES.items()
        for state, moves in table.items()
        for event, target in moves.items()
    ]


def illegal_entries() -> list[tuple[str, enum.Enum, Event]]:
    """Each machine's own events that its table does not allow in a state."""
    own = {
        machine: {event for moves in table.values() for event in moves}
        for machine, (_, table) in MACHINES.items()
    }
    return [
        (machine, state, event)
        for machine, (_, table) in MACHINES.items()
        for state in table
        for event in sorted(own[machine], key=lambda event: event.name)
        if event not in table[state]
    ]


# ------------------------------------------------------------- the tables


def test_each_table_has_a_row_for_every_state_of_its_enum() -> None:
    """No state is left out of its table (a state with no way out has an empty row)."""
    for machine, (_, table) in MACHINES.items():
        assert set(table) == set(ENUMS[machine]), machine


def test_every_state_of_every_machine_is_reachable_from_a_new_transport() -> None:
    """Each state of each enum is one some sequence of legal events reaches."""
    for machine, (attribute, _) in MACHINES.items():
        seen = {getattr(replay(path), attribute) for path in REACHABLE.values()}
        assert seen == set(ENUMS[machine]), machine


def test_a_new_lifecycle_is_open_and_reading() -> None:
    """A transport starts with every side open and its flags saying so."""
    lifecycle = TransportLifecycle()
    assert state_of(lifecycle) == (WriteState.OPEN, ReadState.READING, ConnectionState.OPEN)
    assert (lifecycle.writable, lifecycle.reading, lifecycle.wants_data) == (True, True, True)
    assert (lifecycle.closing, lifecycle.lost, lifecycle.dropped) == (False, False, False)
    assert (lifecycle.eof_written, lifecycle.paused) == (False, False)


@pytest.mark.parametrize(
    ("machine", "state", "event", "target"),
    table_entries(),
    ids=[
        f"{machine}:{state.name}-{event.name}->{target.name}"
        for machine, state, event, target in table_entries()
    ],
)
def test_every_legal_transition_moves_as_its_table_says(
    machine: str, state: enum.Enum, event: Event, target: enum.Enum
) -> None:
    """Applied in its state, an event moves its machine to the table's next state."""
    attribute = MACHINES[machine][0]
    lifecycle = replay(path_to(machine, state))
    assert getattr(lifecycle, attribute) is state
    lifecycle.apply(event)
    assert getattr(lifecycle, attribute) is target


@pytest.mark.parametrize(
    ("machine", "state", "event"),
    illegal_entries(),
    ids=[f"{machine}:{state.name}-{event.name}" for machine, state, event in illegal_entries()],
)
def test_an_event_its_table_does_not_allow_raises_and_changes_nothing(
    machine: str, state: enum.Enum, event: Event
) -> None:
    """A driver that reports an impossible event gets LifecycleError, naming the
    event and the state, and the lifecycle is left as it was."""
    lifecycle = replay(path_to(machine, state))
    before = state_of(lifecycle)
    with pytest.raises(LifecycleError, match=rf"{event.name} .* {type(state).__name__}\.{state.name}"):
        lifecycle.apply(event)
    assert state_of(lifecycle) == before


def test_write_eof_is_refused_once_the_connection_is_closing() -> None:
    """write_eof() while closing is harmless for the protocol, so a driver never
    reports it: the write side's table allows it only on an open connection."""
    lifecycle = replay((Event.CLOSE,))
    with pytest.raises(LifecycleError, match="WRITE_EOF"):
        lifecycle.apply(Event.WRITE_EOF)
    assert lifecycle.write_state is WriteState.OPEN


def test_the_eof_can_go_out_after_close_was_called() -> None:
    """A close() after write_eof() still lets the queued EOF go out first (the
    blocking driver's writer half-closes, then closes)."""
    lifecycle = replay((Event.WRITE_EOF, Event.CLOSE, Event.EOF_SENT))
    assert (lifecycle.write_state, lifecycle.connection_state) == (
        WriteState.EOF_SENT,
        ConnectionState.CLOSING,
    )


def test_the_lifecycle_error_is_in_weft_hierarchy() -> None:
    """LifecycleError is an InvalidStateError, so a WeftError and a RuntimeError."""
    assert issubclass(LifecycleError, InvalidStateError)
    assert issubclass(LifecycleError, WeftError)
    assert issubclass(LifecycleError, RuntimeError)


@pytest.mark.parametrize("event", [Event.CLOSE, Event.ABORT, Event.LOST])
@pytest.mark.parametrize(
    "read_path",
    [(), (Event.PAUSE,), (Event.EOF_RECEIVED,), (Event.EOF_RECEIVED, Event.PAUSE)],
    ids=["reading", "paused", "at-eof", "paused-at-eof"],
)
def test_leaving_open_stops_the_read_side_from_any_state(read_path: tuple[Event, ...], event: Event) -> None:
    """close, abort or loss: whatever the read side was doing, it is STOPPED."""
    lifecycle = replay((*read_path, event))
    assert lifecycle.read_state is ReadState.STOPPED
    assert not lifecycle.reading


# -------------------------------------------------------------- the flags


def assert_flags_match_states(lifecycle: TransportLifecycle) -> None:
    """Each flag is the documented function of the three states."""
    write, read, connection = state_of(lifecycle)
    assert lifecycle.closing is (connection is not ConnectionState.OPEN)
    assert lifecycle.lost is (connection is ConnectionState.LOST)
    assert lifecycle.dropped is (connection in (ConnectionState.ABORTING, ConnectionState.LOST))
    assert lifecycle.eof_written is (write is not WriteState.OPEN)
    assert lifecycle.writable is (write is WriteState.OPEN and connection is ConnectionState.OPEN)
    assert lifecycle.reading is (read in (ReadState.READING, ReadState.AT_EOF))
    assert lifecycle.paused is (read in (ReadState.PAUSED, ReadState.PAUSED_AT_EOF))
    assert lifecycle.wants_data is (read is ReadState.READING)


@pytest.mark.parametrize(
    "path", list(REACHABLE.values()), ids=lambda path: "-".join(e.name for e in path) or "new"
)
def test_the_flags_after_each_transition_say_what_the_states_say(path: tuple[Event, ...]) -> None:
    """From every reachable state, after every event that state allows, the
    flags were recomputed: each is what the new states say."""
    assert_flags_match_states(replay(path))
    legal = 0
    for event in Event:
        lifecycle = replay(path)
        try:
            lifecycle.apply(event)
        except LifecycleError:
            continue
        legal += 1
        assert_flags_match_states(lifecycle)
    # Only a lost connection can be a dead end.
    assert legal or state_of(replay(path))[2] is ConnectionState.LOST


def test_the_flags_are_plain_attributes_for_the_hot_paths() -> None:
    """Reading a flag is an attribute load (a slot), never a property or a call."""
    for name in ("closing", "lost", "dropped", "eof_written", "writable", "reading", "paused", "wants_data"):
        assert type(TransportLifecycle.__dict__[name]).__name__ == "member_descriptor", name


# -------------------------------------------------------------- the page


def documented_states() -> dict[str, list[str]]:
    """The state column of each table in docs/drivers.md's lifecycle section."""
    text = DOC.read_text()
    section = text.split("\n## One transport lifecycle\n", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, list[str]] = {}
    for heading, body in re.findall(
        r"\n### The (write side|read side|connection)\n(.*?)(?=\n### |\Z)", section, re.S
    ):
        tables[heading.split()[0]] = re.findall(r"^\| `([A-Z_]+)` \|", body, re.M)
    return tables


def test_the_docs_tables_list_every_state_once() -> None:
    """docs/drivers.md has one table per machine, listing exactly its states, in order."""
    tables = documented_states()
    assert set(tables) == set(ENUMS)
    for machine, states in tables.items():
        assert states == [state.name for state in ENUMS[machine]], machine


# ------------------------------------------------------------- a transport


def test_the_memory_transport_walks_the_lifecycle() -> None:
    """A real transport tells its lifecycle what happens: pause and resume,
    write_eof with bytes queued (EOF_PENDING until the peer takes them), the
    peer's EOF, then close (nothing queued: straight on to LOST)."""
    protocol = RecordingProtocol(keep_open_on_eof=True)
    conn = connect(protocol, peer_reads=False)
    lifecycle = conn.transport._lifecycle
    conn.transport.pause_reading()
    assert lifecycle.read_state is ReadState.PAUSED
    conn.transport.resume_reading()
    conn.transport.write(b"queued")
    conn.transport.write_eof()
    assert state_of(lifecycle)[0] is WriteState.EOF_PENDING
    assert not conn.eof_written
    assert conn.read() == b"queued"
    assert state_of(lifecycle)[0] is WriteState.EOF_SENT
    assert conn.eof_written
    conn.deliver_eof()
    assert lifecycle.read_state is ReadState.AT_EOF
    assert conn.transport.is_reading()
    conn.transport.close()
    assert state_of(lifecycle) == (WriteState.EOF_SENT, ReadState.STOPPED, ConnectionState.LOST)
    assert not conn.closed  # connection_lost is scheduled, never run from inside close()
    conn.clock.advance(0)
    assert conn.closed


def test_abort_while_the_memory_transport_is_closing_drops_the_queue() -> None:
    """close() with bytes the peer has not read waits in CLOSING; abort() then
    drops them, and the connection is LOST with nothing buffered."""
    conn = connect(RecordingProtocol(), peer_reads=False)
    conn.transport.write(b"never read")
    conn.transport.close()
    assert state_of(conn.transport._lifecycle)[2] is ConnectionState.CLOSING
    conn.transport.abort()
    assert state_of(conn.transport._lifecycle)[2] is ConnectionState.LOST
    assert conn.transport.get_write_buffer_size() == 0
