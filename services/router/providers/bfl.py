"""Black Forest Labs' FLUX API (https://api.bfl.ai, its OpenAPI document "BFL API").

    POST {endpoint}/v1/{model}  {prompt, width, height, seed, output_format, …}
        → {id, polling_url, cost}
    GET  {polling_url}  (else {endpoint}/v1/get_result?id={id})
        → {id, status: Pending | Ready | Error | Failed | Request Moderated | Content Moderated
                       | Task not found, result: {sample, seed, …}, progress}
    x-key: <key>

A model's `remote_id` is the route's last part (`flux-pro-1.1`, `flux-dev`, `flux-2-pro`).
Sides are multiples of 32. `polling_url` names the region that holds the task (api.eu.bfl.ai,
api.us.bfl.ai …): the key goes to BFL's api hosts only, never to the delivery host of a
sample. A sample is a signed URL that expires (ten minutes): one that no longer downloads
is asked for again once (`RemoteProvider`), as a fresh poll signs it anew. `cost` is in credits (one credit is
USD 0.01). A 429 means too many tasks at once, a 402 no credits left. The API has no
cancel and no deadline: a job abandoned here runs to its end and is paid.
"""

from typing import Any

from services.router.providers.adapters import AdapterTraits, adapter
from services.router.providers.base import ProviderError
from services.router.providers.inputs import ModelInputs, SeedInput, SizeInput
from services.router.providers.remote import RemoteProvider
from services.router.providers.remote_calls import OutputImage, RemoteCall, RemoteOutput
from services.router.providers.transport import ApiRequest, json_object, object_at

MICRO_USD_PER_CREDIT = 10_000
RUNNING = frozenset({"Pending", "Queued", "Processing"})
MODERATED = frozenset({"Request Moderated", "Content Moderated"})


@adapter("bfl")
class BlackForestLabsProvider(RemoteProvider):
    can_cancel = False
    traits = AdapterTraits(
        default_endpoint="https://api.bfl.ai", credential_hosts=("api.bfl.ai", "api.*.bfl.ai"),
        default_inputs=ModelInputs(size=SizeInput(multiple_of=32), seed=SeedInput()),
    )

    def _auth_headers(self) -> dict[str, str]:
        return {"x-key": self.secret} if self.secret else {}

    async def _submit(self, call: RemoteCall) -> dict[str, Any]:
        body = json_object(await self._send(ApiRequest(method="POST", url=self.url(f"/v1/{call.pin.remote}"), json=call.payload),
                                            ok=(200,)), self.name)
        task_id = body.get("id")
        if not task_id:
            raise ProviderError(kind="server_error", message=f"{self.name}: the submit answer has no id")
        polling = body.get("polling_url")
        own = isinstance(polling, str) and self.config.may_receive_credentials(polling)
        cost = body.get("cost")
        return {"id": task_id, "poll": polling if own else self.url(f"/v1/get_result?id={task_id}"),
                "cost": cost if isinstance(cost, (int, float)) else None}

    async def _poll(self, handle: dict[str, Any]) -> RemoteOutput | None:
        answer = json_object(await self._send(ApiRequest(method="GET", url=handle["poll"]), ok=(200,)), self.name)
        status = answer.get("status")
        if status in RUNNING:
            return None
        if status in MODERATED:
            raise ProviderError(kind="bad_request", message=f"{self.name}: {status}", terminal=True)
        if status != "Ready":
            raise ProviderError(kind="server_error", message=f"{self.name}: task {handle['id']} is {status!r}: "
                                                f"{answer.get('details')}", terminal=True)
        result = object_at(answer, "result")
        if not isinstance(result.get("sample"), str):
            raise ProviderError(kind="bad_output", message=f"{self.name}: a Ready task has no sample", terminal=True)
        seed = result.get("seed") if isinstance(result.get("seed"), int) else None
        cost = handle.get("cost")
        return RemoteOutput(images=(OutputImage(url=result["sample"], seed=seed),),
                            cost_micro_usd=round(cost * MICRO_USD_PER_CREDIT) if cost is not None else None)
