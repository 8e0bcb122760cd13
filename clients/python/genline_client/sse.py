"""Server-sent events (the WHATWG `text/event-stream` format), read line by line.

Fields `event`, `data` (several lines join with a newline), `id` and `retry`; a line
starting with `:` is a comment (the server's keep-alive); a blank line ends an event. The
parser is fed lines and returns whole events, so the sync and async clients share it.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


@dataclass(kw_only=True)
class EventStreamParser:
    last_event_id: str | None = None  # kept across events, as the spec says
    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _retry: int | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        """One line without its line ending; the event it completes, if any."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        # An event without data is not dispatched (an `id:` alone still moves last_event_id).
        event = None
        if self._data:
            event = ServerSentEvent(event=self._event or "message", data="\n".join(self._data), id=self.last_event_id, retry=self._retry)
        self._event, self._data, self._retry = "", [], None
        return event
