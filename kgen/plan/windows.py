"""The numbers of a window step, as Kafka Streams derives them: span, advance, default
retention, how long after stream time a window closes, and the format of its windowed keys."""

from __future__ import annotations

from kgen.spec import Hopping, Session, Sliding, Tumbling, WindowBase, duration_ms


def kind(window: WindowBase) -> str:
    """'time' (tumbling, hopping), 'sliding' or 'session'."""
    if isinstance(window, Sliding):
        return "sliding"
    if isinstance(window, Session):
        return "session"
    return "time"


def span(window: WindowBase) -> int:
    """A time window's size, a sliding window's time difference, a session's gap (ms)."""
    if isinstance(window, Tumbling):
        return duration_ms(window.tumbling)
    if isinstance(window, Hopping):
        return duration_ms(window.hopping)
    if isinstance(window, Sliding):
        return duration_ms(window.sliding)
    assert isinstance(window, Session)
    return duration_ms(window.session)


def advance(window: WindowBase) -> int:
    return duration_ms(window.advance) if isinstance(window, Hopping) else span(window)


def grace(window: WindowBase) -> int:
    return duration_ms(window.grace)


def retention(window: WindowBase) -> int:
    """How long a window stays in the store: the spec's, else the least Kafka Streams allows
    (size + grace; sliding: 2 x difference + grace; session: gap + grace)."""
    if window.retention is not None:
        return duration_ms(window.retention)
    if isinstance(window, Sliding):
        return 2 * span(window) + grace(window)
    return span(window) + grace(window)


def closes_after(window: WindowBase) -> int:
    """How far stream time must pass a window's end before its final result goes out
    (suppress(untilWindowCloses)): the grace, and for sessions the gap too."""
    if isinstance(window, Session):
        return grace(window) + span(window)
    return grace(window)


def key_format(inner: str, window: WindowBase) -> str:
    """The format of the window's keys: the key in `inner`, then the window start (Kafka
    Streams' TimeWindowedSerde, whose reader needs the size for the end), or for sessions the
    end then the start (SessionWindowedSerde)."""
    if isinstance(window, Session):
        return f"session_{inner}"
    return f"windowed_{inner}_{span(window)}"
