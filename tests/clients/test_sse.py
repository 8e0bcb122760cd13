"""The event-stream parser, on the lines of the WHATWG format."""

from genline_client.sse import EventStreamParser, ServerSentEvent


def parse(text: str, last_event_id: str | None = None) -> tuple[list[ServerSentEvent], EventStreamParser]:
    parser = EventStreamParser(last_event_id=last_event_id)
    events = [event for line in text.split("\n") if (event := parser.feed(line.rstrip("\r")))]
    return events, parser


def test_fields_comments_and_multi_line_data():
    events, parser = parse(": keep-alive\n\nid: 3\nevent: state\ndata: {\"a\":\ndata: 1}\nretry: 5000\n\n"
                           "data:no space\n\n")
    assert events == [ServerSentEvent(event="state", data='{"a":\n1}', id="3", retry=5000), ServerSentEvent(event="message", data="no space", id="3")]
    assert parser.last_event_id == "3"


def test_an_event_without_data_is_not_dispatched_but_its_id_is_kept():
    events, parser = parse("id: 9\nevent: ping\n\n", last_event_id="4")
    assert events == [] and parser.last_event_id == "9"


def test_an_unfinished_event_is_not_dispatched():
    events, _ = parse("id: 1\ndata: x")
    assert events == []
