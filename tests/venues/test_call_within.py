"""call_within: one deadline per venue call, a timeout becomes a transport VenueError."""

import pytest
import trio

from scalper.core.errors import ErrorClass, Operation
from scalper.venues.base import VenueError, call_within


async def _slow(answer: str, *, delay: float) -> str:
    await trio.sleep(delay)
    return answer


async def test_answer_in_time_is_returned(autojump_clock) -> None:
    assert await call_within(5.0, Operation.QUERY, _slow, "ok", delay=1.0) == "ok"


async def test_timed_out_mutation_is_ambiguous(autojump_clock) -> None:
    with pytest.raises(VenueError) as info:
        await call_within(5.0, Operation.CREATE, _slow, "late", delay=6.0)
    assert info.value.error_class is ErrorClass.AMBIGUOUS
    assert info.value.operation is Operation.CREATE
    assert "5s" in info.value.message


async def test_timed_out_read_is_retryable(autojump_clock) -> None:
    with pytest.raises(VenueError) as info:
        await call_within(5.0, Operation.QUERY, _slow, "late", delay=6.0)
    assert info.value.error_class is ErrorClass.RETRYABLE
    assert not info.value.is_ambiguous
