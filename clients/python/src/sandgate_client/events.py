"""Streamed executions: the service's NDJSON lines as typed events, and the callbacks they feed.

With `Accept: application/x-ndjson` the service sends one JSON object a line as the program
produces output: `{"type": "stdout"|"stderr", "text"}`, `{"type": "result", "kind", "data"}`,
and last `{"type": "end", "response": <the usual answer>}`. Lines of a type this client does
not know are skipped. A service that answers with plain JSON instead (one that does not stream)
is read as the same events, all delivered when the program has ended.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from sandgate_client.errors import ProtocolError, StreamInterrupted
from sandgate_client.models import ExecuteResult, Output

__all__ = [
    "Callbacks",
    "EndEvent",
    "Event",
    "EventDecoder",
    "OutputEvent",
    "ResultEvent",
    "aconsume",
    "consume",
    "events_of_answer",
]

R = TypeVar("R", bound=ExecuteResult)


class OutputEvent(BaseModel):
    """Text the program wrote to stdout or stderr (already screened by the service)."""

    type: Literal["stdout", "stderr"]
    text: str


class ResultEvent(Output):
    """A rich result (a value, a `display()`, a figure) as soon as it is produced."""

    type: Literal["result"] = "result"


class EndEvent(BaseModel, Generic[R]):
    """The last event: the whole answer, as a non-streamed call would have returned it."""

    type: Literal["end"] = "end"
    response: R


Event = OutputEvent | ResultEvent | EndEvent[R]


class EventDecoder(Generic[R]):
    """Turns NDJSON lines into events; `finish()` raises if the `end` event never came."""

    def __init__(self, response_model: type[R]) -> None:
        self._model = response_model
        self.response: R | None = None

    def decode(self, line: str) -> Event[R] | None:
        """The event of one line, or None for a blank line or an unknown type."""
        if not line.strip():
            return None
        try:
            raw = json.loads(line)
            kind = raw.get("type")
            if kind in ("stdout", "stderr"):
                return OutputEvent.model_validate(raw)
            if kind == "result":
                return ResultEvent.model_validate(raw)
            if kind == "end":
                self.response = self._model.model_validate(raw["response"])
                return EndEvent[R](response=self.response)
        except (ValueError, AttributeError, KeyError, ValidationError) as exc:
            raise ProtocolError(f"unreadable stream line: {exc}") from None
        return None

    def finish(self) -> R:
        """The final answer; `StreamInterrupted` if the stream stopped before it."""
        if self.response is None:
            raise StreamInterrupted("the stream ended before its end event")
        return self.response


def events_of_answer(answer: R) -> list[Event[R]]:
    """The events a whole (non-streamed) answer stands for: its output, results, then end."""
    events: list[Event[R]] = [
        OutputEvent(type=name, text=text)
        for name, text in (("stdout", answer.stdout), ("stderr", answer.stderr))
        if text
    ]
    events += [ResultEvent(kind=r.kind, data=r.data) for r in answer.results]
    events.append(EndEvent[R](response=answer))
    return events


TextCallback = Callable[[str], object]
ResultCallback = Callable[[Output], object]


@dataclass(frozen=True)
class Callbacks:
    """What to call as events arrive; each is optional."""

    on_stdout: TextCallback | None = None
    on_stderr: TextCallback | None = None
    on_result: ResultCallback | None = None

    def __bool__(self) -> bool:
        return any((self.on_stdout, self.on_stderr, self.on_result))

    def deliver(self, event: Event[R]) -> None:
        """Call the callback for `event`, if one is set."""
        if isinstance(event, OutputEvent):
            callback = self.on_stdout if event.type == "stdout" else self.on_stderr
            if callback is not None:
                callback(event.text)
        elif isinstance(event, ResultEvent) and self.on_result is not None:
            self.on_result(event)


def consume(events: Iterable[Event[R]], callbacks: Callbacks) -> R:
    """Deliver each event to `callbacks` and return the answer of the `end` event."""
    for event in events:
        if isinstance(event, EndEvent):
            return event.response
        callbacks.deliver(event)
    raise StreamInterrupted("the stream ended before its end event")


async def aconsume(events: AsyncIterable[Event[R]], callbacks: Callbacks) -> R:
    """`consume` for an async stream."""
    async for event in events:
        if isinstance(event, EndEvent):
            return event.response
        callbacks.deliver(event)
    raise StreamInterrupted("the stream ended before its end event")
