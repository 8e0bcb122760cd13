"""`client.batches` and `client.evaluations` of the asyncio client (`AsyncGenline`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from genline_client import _calls, _resources
from genline_client.errors import WaitTimeout


class AsyncBatches:
    """`client.batches`, as `Genline.batches`, awaited."""

    def __init__(self, client: _calls.AsyncClientCalls) -> None:
        self._client = client

    async def create(self, lines: Any, *, endpoint: str = "/v1/images/generations",
                     metadata: dict[str, str] | None = None, filename: str = "batch.jsonl") -> dict[str, Any]:
        content = _resources.jsonl_of(_resources.with_defaults(lines, endpoint))
        uploaded = await self._client.call(_resources.upload_file(content, filename))
        return await self._client.call(_resources.create_batch(uploaded["id"], endpoint, metadata=metadata))

    async def get(self, batch: Any) -> dict[str, Any]:
        return await self._client.call(_calls.Call(method="GET", path=f"/v1/batches/{_resources.batch_id_of(batch)}"))

    async def cancel(self, batch: Any) -> dict[str, Any]:
        return await self._client.call(_calls.Call(method="POST", path=f"/v1/batches/{_resources.batch_id_of(batch)}/cancel"))

    async def delete_file(self, file_id: str) -> dict[str, Any]:
        return await self._client.call(_calls.Call(method="DELETE", path=f"/v1/files/{file_id}"))

    async def wait(self, batch: Any, *, timeout: float | None = None, poll_interval: float = 2.0) -> dict[str, Any]:
        deadline = _calls.deadline_in(timeout)
        while (current := await self.get(batch))["status"] not in _resources.BATCH_ENDED:
            if _calls.past(deadline):
                raise WaitTimeout(f"batch {current['id']} is still {current['status']}")
            await self._client._sleep(poll_interval)
        return current

    async def results(self, batch: Any, *, errors: bool = False) -> AsyncIterator[dict[str, Any]]:
        batch = batch if isinstance(batch, dict) else await self.get(batch)
        file_id = batch["error_file_id" if errors else "output_file_id"]
        if file_id is None:
            return
        request = self._client._http.build_request("GET", f"/v1/files/{file_id}/content")
        async with self._client._open(request) as answer:
            async for line in answer.aiter_lines():
                if line:
                    yield _resources.json.loads(line)


class AsyncEvaluations:
    """`client.evaluations`, as `Genline.evaluations`, awaited."""

    def __init__(self, client: _calls.AsyncClientCalls) -> None:
        self._client = client

    async def create(self, images: list[Any], **options: Any) -> dict[str, Any]:
        body = _resources.evaluation_body(images, options)
        return await self._client.call(_calls.Call(method="POST", path="/v1/evaluations", json=body))

    async def create_batch(self, images: list[Any], *, webhook_url: str | None = None,
                           **options: Any) -> dict[str, Any]:
        body = _resources.evaluation_body(images, options | {"webhook_url": webhook_url})
        return await self._client.call(_calls.Call(method="POST", path="/v1/evaluations/batches", json=body))

    async def get(self, evaluation: Any) -> dict[str, Any]:
        return await self._client.call(_calls.Call(method="GET", path=f"/v1/evaluations/{_resources.batch_id_of(evaluation)}"))

    async def wait(self, evaluation: Any, *, timeout: float | None = None,
                   poll_interval: float = 1.0) -> dict[str, Any]:
        deadline = _calls.deadline_in(timeout)
        while (current := await self.get(evaluation))["status"] not in _resources.EVALUATION_ENDED:
            if _calls.past(deadline):
                raise WaitTimeout(f"evaluation {current['id']} is still {current['status']}")
            await self._client._sleep(poll_interval)
        return current
