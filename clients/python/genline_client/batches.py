"""`client.batches` and `client.evaluations` of the synchronous client (`Genline`)."""

from __future__ import annotations  # `list` below names a method

from collections.abc import Iterator
from typing import Any

from genline_client import _calls, _resources
from genline_client.errors import WaitTimeout


class Batches:
    """`client.batches`: OpenAI's Batch API — a JSONL of requests run as bulk jobs at the batch price.

        batch = client.batches.create([{"custom_id": "sku-1", "body": {"prompt": "a mug", "size": "1024x1024"}}])
        batch = client.batches.wait(batch)
        for line in client.batches.results(batch):   # each line's custom_id and answer
            print(line["custom_id"], line["response"]["body"]["data"][0]["url"])
    """

    def __init__(self, client: _calls.ClientCalls) -> None:
        self._client = client

    def create(self, lines: Any, *, endpoint: str = "/v1/images/generations",
               metadata: dict[str, str] | None = None, filename: str = "batch.jsonl") -> dict[str, Any]:
        """Upload the requests (a JSONL path, its bytes, or dicts) and start the batch."""
        content = _resources.jsonl_of(_resources.with_defaults(lines, endpoint))
        uploaded = self._client.call(_resources.upload_file(content, filename))
        return self._client.call(_resources.create_batch(uploaded["id"], endpoint, metadata=metadata))

    def get(self, batch: Any) -> dict[str, Any]:
        return self._client.call(_calls.Call(method="GET", path=f"/v1/batches/{_resources.batch_id_of(batch)}"))

    def list(self, *, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        return self._client.call(_calls.Call(method="GET", path="/v1/batches", params=_calls.without_none(
            {"limit": limit, "after": after})))

    def cancel(self, batch: Any) -> dict[str, Any]:
        return self._client.call(_calls.Call(method="POST", path=f"/v1/batches/{_resources.batch_id_of(batch)}/cancel"))

    def delete_file(self, file_id: str) -> dict[str, Any]:
        """Delete one of your batch files (an ended batch's input, output or error file):
        `{"id", "object": "file", "deleted": true}`, as OpenAI's `files.delete` answers."""
        return self._client.call(_calls.Call(method="DELETE", path=f"/v1/files/{file_id}"))

    def wait(self, batch: Any, *, timeout: float | None = None, poll_interval: float = 2.0) -> dict[str, Any]:
        """The batch once it has ended (completed, failed, expired or cancelled)."""
        deadline = _calls.deadline_in(timeout)
        while (current := self.get(batch))["status"] not in _resources.BATCH_ENDED:
            if _calls.past(deadline):
                raise WaitTimeout(f"batch {current['id']} is still {current['status']}")
            self._client._sleep(poll_interval)
        return current

    def results(self, batch: Any, *, errors: bool = False) -> Iterator[dict[str, Any]]:
        """The lines of an ended batch's output file (`errors`: its error file), streamed."""
        batch = batch if isinstance(batch, dict) else self.get(batch)
        file_id = batch["error_file_id" if errors else "output_file_id"]
        if file_id is None:
            return
        with self._client._open(self._client._http.build_request("GET", f"/v1/files/{file_id}/content")) as answer:
            for line in answer.iter_lines():
                if line:
                    yield _resources.json.loads(line)


class Evaluations:
    """`client.evaluations`: images you bring, judged by Genline's scorer (no generation).

        evaluation = client.evaluations.create(["photo.png"], template="product", prompt="a mug")
        print(evaluation["images"][0]["passed"], evaluation["images"][0]["failed"])
    """

    def __init__(self, client: _calls.ClientCalls) -> None:
        self._client = client

    def create(self, images: list[Any], **options: Any) -> dict[str, Any]:
        """Judge up to four images now (paths, bytes, URLs or API sources); `template`, `profile`,
        `rules`, `references`, `prompt` and `size` as the API takes them."""
        body = _resources.evaluation_body(images, options)
        return self._client.call(_calls.Call(method="POST", path="/v1/evaluations", json=body))

    def create_batch(self, images: list[Any], *, webhook_url: str | None = None, **options: Any) -> dict[str, Any]:
        """Judge many images in the background (up to your plan's limit); follow with `wait`."""
        body = _resources.evaluation_body(images, options | {"webhook_url": webhook_url})
        return self._client.call(_calls.Call(method="POST", path="/v1/evaluations/batches", json=body))

    def get(self, evaluation: Any) -> dict[str, Any]:
        return self._client.call(_calls.Call(method="GET", path=f"/v1/evaluations/{_resources.batch_id_of(evaluation)}"))

    def wait(self, evaluation: Any, *, timeout: float | None = None, poll_interval: float = 1.0) -> dict[str, Any]:
        deadline = _calls.deadline_in(timeout)
        while (current := self.get(evaluation))["status"] not in _resources.EVALUATION_ENDED:
            if _calls.past(deadline):
                raise WaitTimeout(f"evaluation {current['id']} is still {current['status']}")
            self._client._sleep(poll_interval)
        return current
