"""Runware's task API (runware.ai/docs: "Image inference", "Task polling", "Errors").

    POST {endpoint}/v1  [{taskType: imageInference, taskUUID, positivePrompt, width, height, model,
                          numberResults, seed, steps, negativePrompt, outputType: URL,
                          includeCost: true, deliveryMethod: async}]
        → {data: [{taskType, taskUUID}]}
    POST {endpoint}/v1  [{taskType: getResponse, taskUUID}]
        → {data: [{taskUUID, status: processing | success, imageURL, seed, cost, …}],
           errors: [{code, message, taskUUID, status: error}]}
    Authorization: Bearer <key>

The client names each task (`taskUUID`, a UUID v4), so the task is written down before it
is sent: a router that dies while sending finds it and asks for it instead of sending
another. Each image comes with its seed and cost (USD). Sides are multiples of 64; the
price is per step of the model. Errors come in the same `errors` list (401 no key, 402
no balance, 429 too many requests), or as a task's own result with `status: "error"`: either
ends the wait at once, as Runware's SDK does (`_pollResults` raises on the first result that
is an error). Content-safety codes (`contentPolicyViolation`, `nsfwContentDetected`, …) are
refusals of the request, not the provider's defect. The API has no cancel and no deadline:
the router's deadline ends the wait, and the task runs on (and is paid).
"""

import uuid
from typing import Any

import httpx

from services.router.providers.adapters import AdapterTraits, adapter
from services.router.providers.base import ProviderError
from services.router.providers.inputs import CountInput, ModelInputs, NamedInput, SeedInput, SizeInput, StepsInput
from services.router.providers.remote import RemoteProvider
from services.router.providers.remote_calls import OutputImage, RemoteCall, RemoteOutput
from services.router.providers.transport import ApiRequest, json_object

OUT_OF_CREDIT = frozenset({"insufficientCredits", "insufficientBalance", "paymentRequired"})
# Refusals of the request's content: Runware's own moderation and its providers' safety filters.
REFUSED = frozenset({"contentModerationFailed", "invalidPositivePrompt", "safetyCheckFailed",
                     "contentPolicyViolation", "providerContentPolicyViolation", "nsfwContentDetected",
                     "sensitiveContentDetected", "unsafeContentDetected", "promptBlocked", "imageBlocked",
                     "moderationFailed"})


@adapter("runware")
class RunwareProvider(RemoteProvider):
    can_cancel = False
    traits = AdapterTraits(
        default_endpoint="https://api.runware.ai",
        default_inputs=ModelInputs(prompt_field="positivePrompt", size=SizeInput(multiple_of=64),
                                   count=CountInput(field="numberResults", max=20), seed=SeedInput(),
                                   negative_prompt=NamedInput(field="negativePrompt"),
                                   steps=StepsInput(field="steps", default=20, max=100)),
    )

    def _name_before_submit(self, call: RemoteCall) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "count": call.request.count}

    async def _submit(self, call: RemoteCall) -> dict[str, Any] | RemoteOutput:
        handle = call.named or self._name_before_submit(call)
        task = {"taskType": "imageInference", "taskUUID": handle["id"], "model": call.pin.remote, **call.payload,
                "outputType": "URL", "includeCost": True, "deliveryMethod": "async"}
        answer = json_object(await self._send(ApiRequest(method="POST", url=self.url("/v1"), json=[task]), ok=(200,)), self.name)
        self._raise_errors(answer, handle["id"])
        # A server that answers at once (Runware's synchronous delivery) gives the images here.
        return self._images(answer, handle) or handle

    async def _poll(self, handle: dict[str, Any]) -> RemoteOutput | None:
        asked = ApiRequest(method="POST", url=self.url("/v1"), json=[{"taskType": "getResponse", "taskUUID": handle["id"]}])
        answer = json_object(await self._send(asked, ok=(200,)), self.name)
        self._raise_errors(answer, handle["id"])
        return self._images(answer, handle)

    def _images(self, answer: dict[str, Any], handle: dict[str, Any]) -> RemoteOutput | None:
        """The task's images once every one is done; None while any is missing or processing."""
        items = [item for item in answer.get("data") or [] if isinstance(item, dict)]
        failed = next((item for item in items if _is_error(item)), None)
        if failed is not None:
            # A task that failed says so in its own result: the wait ends here, as the SDK's does.
            raise _error_of(self.name, failed, task_id=handle["id"])
        # An image is listed once its generation starts, and has its URL once it succeeded.
        done = [item for item in items if isinstance(item.get("imageURL"), str)]
        if len(done) < handle.get("count", 1) or any(item.get("status") == "processing" for item in items):
            return None
        images = [OutputImage(url=item["imageURL"], seed=item["seed"] if isinstance(item.get("seed"), int) else None)
                  for item in done]
        costs = [item["cost"] for item in done if isinstance(item.get("cost"), (int, float))]
        return RemoteOutput(images=tuple(images),
                            cost_micro_usd=round(sum(costs) * 1_000_000) if len(costs) == len(done) else None)

    def _raise_errors(self, answer: dict[str, Any], task_id: str) -> None:
        errors = [e for e in answer.get("errors") or [] if isinstance(e, dict)]
        if errors:
            raise _error_of(self.name, errors[0], task_id=task_id)

    def _error(self, response: httpx.Response) -> ProviderError:
        error = super()._error(response)
        try:
            errors = json_object(response, self.name).get("errors") or []
        except ProviderError:
            return error
        code = errors[0].get("code") if errors and isinstance(errors[0], dict) else None
        if code in OUT_OF_CREDIT:
            return ProviderError(kind="unavailable", message=str(error))
        return error


def _is_error(item: dict[str, Any]) -> bool:
    """A result that is an error: its status says so, or it carries an error's code (as the SDK reads it)."""
    return item.get("status") == "error" or bool(item.get("code") or item.get("error") or item.get("errorId"))


def _error_of(provider: str, error: dict[str, Any], *, task_id: str) -> ProviderError:
    code, message = error.get("code"), error.get("message")
    detail = f"{provider}: task {task_id}: {code}: {message}"
    if code in OUT_OF_CREDIT:
        return ProviderError(kind="unavailable", message=detail, terminal=True)
    if code in ("invalidApiKey", "unauthorized"):
        return ProviderError(kind="credentials", message=detail, terminal=True)
    if code in REFUSED or str(code).startswith("invalid"):
        return ProviderError(kind="bad_request", message=detail, terminal=True)
    return ProviderError(kind="server_error", message=detail, terminal=True)
