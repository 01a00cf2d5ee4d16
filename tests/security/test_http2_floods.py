"""Boundary 1 (external application → SAS) over HTTP/2: the floods HTTP/2 makes cheap for a client.

The attacker is the ``h2`` library as a client plus raw frames (hyperframe) for what no client
library sends. Each attack ends in a GOAWAY (or a refused stream) for the attacking connection,
and another client is served normally afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import h2.config
import h2.connection
import h2.settings
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    RstStreamFrame,
    WindowUpdateFrame,
)

from asgate.access.options import EngineOptions
from tests.access.conftest import Sas, make_sas  # noqa: F401 - the fixture
from tests.access.h2client import Attacker
from tests.access.test_http2 import curl

OPTIONS = EngineOptions(
    header_timeout=0.6,
    idle_timeout=0.8,
    tick=0.05,
    shutdown_grace=2.0,
    h2_max_streams=10,
    h2_max_resets=50,
    h2_max_control_frames=50,
)


@pytest.fixture
async def flooded(make_sas: Callable[..., Awaitable[Sas]]) -> AsyncIterator[Sas]:  # noqa: F811
    yield await make_sas(options=OPTIONS)


async def still_serves(sas: Sas) -> None:
    status, _, _, version = await curl(sas.port, "/1/echo")
    assert (status, version) == (200, "HTTP/2")


async def test_rapid_reset_ends_in_goaway_enhance_your_calm(flooded: Sas) -> None:
    attacker = await Attacker.open(flooded.port)
    for _ in range(200):  # CVE-2023-44487: open a stream, cancel it at once, again and again
        stream_id = attacker.request("/1/slow?s=1")
        attacker.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
        await attacker.send()
        if attacker.closed:
            break
    assert await attacker.goaway() == ErrorCodes.ENHANCE_YOUR_CALM
    attacker.close()
    await still_serves(flooded)
    assert len(flooded.gate.heads) <= OPTIONS.h2_max_resets + 2  # the gate saw only what came before
    # Every cancelled stream gave its admission back (no in-flight slot leaks).
    assert len(flooded.gate.done) == len(flooded.gate.heads)


async def test_a_ping_flood_ends_in_goaway(flooded: Sas) -> None:
    attacker = await Attacker.open(flooded.port)
    for i in range(300):
        attacker.h2.ping(i.to_bytes(8, "big"))
    await attacker.send()
    assert await attacker.goaway() == ErrorCodes.ENHANCE_YOUR_CALM
    attacker.close()
    await still_serves(flooded)


async def test_a_settings_flood_ends_in_goaway(flooded: Sas) -> None:
    attacker = await Attacker.open(flooded.port)
    for i in range(300):
        attacker.h2.update_settings({h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384 + i})
    await attacker.send()
    assert await attacker.goaway() == ErrorCodes.ENHANCE_YOUR_CALM
    attacker.close()


async def test_empty_data_and_tiny_window_updates_end_in_goaway(flooded: Sas) -> None:
    attacker = await Attacker.open(flooded.port)
    stream_id = attacker.request("/1/echo", end=False, method="POST")
    raw = b""
    for _ in range(200):
        raw += DataFrame(stream_id, data=b"").serialize()
    await attacker.send(raw)
    assert await attacker.goaway() == ErrorCodes.ENHANCE_YOUR_CALM
    attacker.close()

    attacker = await Attacker.open(flooded.port)
    await attacker.send(b"".join(WindowUpdateFrame(0, window_increment=1).serialize() for _ in range(200)))
    assert await attacker.goaway() == ErrorCodes.ENHANCE_YOUR_CALM
    attacker.close()
    await still_serves(flooded)


async def test_a_continuation_flood_is_cut_short(flooded: Sas) -> None:
    """CVE-2024-27316: a header block that never ends; the server stops it long before 1 MiB."""
    attacker = await Attacker.open(flooded.port)
    await attacker.send(HeadersFrame(1, data=b"\x82", flags=[]).serialize())  # no END_HEADERS
    for _ in range(60):  # 60 x 16 KiB would be ~1 MiB held by the server (h2 allows 64 frames)
        await attacker.send(ContinuationFrame(1, data=b"\x00" * 16384, flags=[]).serialize())
        if attacker.closed:
            break
    assert await attacker.goaway() == ErrorCodes.ENHANCE_YOUR_CALM
    attacker.close()
    assert flooded.gate.heads == []
    # Many tiny CONTINUATION frames: h2's own bound (64 frames) closes the connection.
    attacker = await Attacker.open(flooded.port)
    raw = HeadersFrame(1, data=b"\x82", flags=[]).serialize()
    raw += b"".join(ContinuationFrame(1, data=b"\x00", flags=[]).serialize() for _ in range(100))
    await attacker.send(raw)
    assert await attacker.goaway() == ErrorCodes.PROTOCOL_ERROR
    attacker.close()
    await still_serves(flooded)


async def test_streams_past_the_limit_are_refused_and_the_others_answered(flooded: Sas) -> None:
    attacker = await Attacker.open(flooded.port)
    # Our SETTINGS (MAX_CONCURRENT_STREAMS 10) first, as a well-behaved client would read them;
    # then one stream more than allowed, ignoring them.
    await attacker.until(lambda f: f.type == 0x4)
    attacker.h2.remote_settings.max_concurrent_streams = 100  # pretend we never saw the setting
    ids = [attacker.request("/1/slow?s=0.3") for _ in range(OPTIONS.h2_max_streams + 1)]
    await attacker.send()
    refused = await attacker.until(lambda f: isinstance(f, RstStreamFrame))
    assert isinstance(refused, RstStreamFrame)
    assert (refused.stream_id, refused.error_code) == (ids[-1], ErrorCodes.REFUSED_STREAM)
    answered: set[int] = set()

    def all_answered(frame: Frame) -> bool:
        if "END_STREAM" in frame.flags and frame.stream_id in ids:
            answered.add(frame.stream_id)
        return answered == set(ids[:-1])

    assert await attacker.until(all_answered) is not None
    assert {attacker.status(i) for i in ids[:-1]} == {200}
    attacker.close()
    await still_serves(flooded)


async def test_a_stream_that_never_finishes_its_body_gets_408(flooded: Sas) -> None:
    attacker = await Attacker.open(flooded.port)
    stream_id = attacker.request("/1/echo", end=False, method="POST")
    attacker.h2.send_data(stream_id, b"x" * 10)
    await attacker.send()
    ended = await attacker.until(lambda f: f.stream_id == stream_id and "END_STREAM" in f.flags)
    assert ended is not None and attacker.status(stream_id) == 408
    attacker.close()


async def test_a_silent_connection_is_closed_after_the_idle_timeout(flooded: Sas) -> None:
    attacker = await Attacker.open(flooded.port)
    assert await attacker.goaway(timeout=3.0) == ErrorCodes.NO_ERROR
    attacker.close()


async def test_a_client_that_stops_reading_holds_one_window_and_loses_the_stream(flooded: Sas) -> None:
    """Slow read: the client never opens its window again; the server sends that window's worth,
    stops reading from the instance, and resets the stream after the idle timeout."""
    attacker = await Attacker.open(flooded.port)
    stream_id = attacker.request("/1/big?size=5000000")
    await attacker.send()
    reset = await attacker.until(lambda f: isinstance(f, RstStreamFrame) and f.stream_id == stream_id)
    assert isinstance(reset, RstStreamFrame) and reset.error_code == ErrorCodes.CANCEL
    sent = sum(len(f.data) for f in attacker.received if isinstance(f, DataFrame))
    assert sent == 65535  # the default stream window, nothing more
    attacker.close()
    await still_serves(flooded)
