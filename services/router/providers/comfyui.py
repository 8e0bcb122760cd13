"""ComfyUI's server routes (comfyanonymous/ComfyUI, server.py).

    POST {endpoint}/prompt  {prompt: <workflow in API format>, client_id}  → {prompt_id, number, node_errors}
    GET  {endpoint}/history/{prompt_id}   → {} while queued or running;
                                            {prompt_id: {prompt, outputs, status: {status_str, completed, messages}}}
    GET  {endpoint}/view?filename=…&subfolder=…&type=output                → the image bytes
    GET  {endpoint}/queue                 → {queue_running: [[number, prompt_id, …]], queue_pending: […]}
    POST {endpoint}/queue {delete: [prompt_id]}   removes a prompt still waiting
    POST {endpoint}/interrupt {prompt_id}         stops the running prompt

The workflow is the operator's: any graph in ComfyUI's API format (`options.workflow`),
where a string that is exactly `{{name}}` becomes the value of a placeholder (typed: the
seed is a number) and `{{name}}` inside a longer string is replaced by its text. The
placeholders are prompt, negative_prompt, seed, width, height, count, steps (the model's
`inputs.steps`), model (the pinned model's `remote_id`, a checkpoint file) and
filename_prefix; `{{prompt}}` is
required, and a workflow without `{{count}}` makes one image a call. Without a workflow,
a plain text-to-image graph (checkpoint → CLIP text encode → empty latent → KSampler → VAE
decode → SaveImage) is used. The seed each image was made with is read back from the graph
ComfyUI ran (its history's `prompt`).

Cancel removes the prompt from the queue, then asks `/interrupt` with its `prompt_id`:
ComfyUI's server.py interrupts only if that prompt is the one running, checked on the
server at that moment (reading `/queue` first and interrupting after would race a prompt
that finishes in between). An older server ignores the id and stops whatever runs,
possibly another client's prompt: for one, `options.targeted_interrupt: false`, and a
running prompt is left to finish (the router's deadline still ends the wait here).

`POST /prompt` answers 400 for a workflow it will not run; when the cause is the server's
own (a checkpoint, LoRA or VAE file it does not have, a node type it lacks) that is the
server's defect (`server_error`, which counts against its breaker), not the request's.

ComfyUI has no authentication of its own; a secret, when configured, is sent as a bearer
token for the proxy in front of it. It runs no stage other than generate.
"""

import copy
import re
from collections.abc import Iterator
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, model_validator

from services.router.providers.adapters import AdapterTraits, adapter, adapter_options
from services.router.providers.base import ErrorKind, GenerationRequest, ProviderError
from services.router.providers.entry_parts import ModelPin
from services.router.providers.inputs import CountInput, ModelInputs, SeedInput, SizeInput, StepsInput
from services.router.providers.registry import ProviderConfig
from services.router.providers.remote import RemoteProvider
from services.router.providers.remote_calls import OutputImage, RemoteCall, RemoteOutput
from services.router.providers.transport import ApiRequest, json_object, object_at

CLIENT_ID = "genline-router"
DEFAULT_STEPS = 20
PLACEHOLDERS = frozenset({"prompt", "negative_prompt", "seed", "width", "height", "count", "steps", "model",
                          "filename_prefix"})
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")

DEFAULT_WORKFLOW: dict[str, Any] = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": "{{seed}}", "steps": "{{steps}}", "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
        "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "{{model}}"}},
    "5": {"class_type": "EmptyLatentImage",
          "inputs": {"width": "{{width}}", "height": "{{height}}", "batch_size": "{{count}}"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{negative_prompt}}", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "{{filename_prefix}}", "images": ["8", 0]}},
}


class ComfyUIOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    workflow: dict[str, Any] = DEFAULT_WORKFLOW
    # The server's /interrupt honours a prompt_id (interrupts that prompt only if it runs).
    targeted_interrupt: bool = True

    @model_validator(mode="after")
    def workflow_is_an_api_graph(self) -> "ComfyUIOptions":
        for node_id, node in self.workflow.items():
            if not isinstance(node, dict) or "class_type" not in node or not isinstance(node.get("inputs"), dict):
                raise ValueError(f"workflow node {node_id!r} is not {{class_type, inputs}}: export the workflow in"
                                 " ComfyUI's API format")
        names = set(placeholders_in(self.workflow))
        unknown = sorted(names - PLACEHOLDERS)
        if unknown:
            raise ValueError(f"workflow placeholder {{{{{unknown[0]}}}}} is unknown; known: {sorted(PLACEHOLDERS)}")
        if "prompt" not in names:
            raise ValueError("workflow has no {{prompt}} placeholder")
        return self


@adapter("comfyui")
class ComfyUIProvider(RemoteProvider):
    traits = AdapterTraits(
        needs_credentials=False, options=ComfyUIOptions,
        default_inputs=ModelInputs(size=SizeInput(multiple_of=8), count=CountInput(field="count", max=8),
                                   seed=SeedInput(max=2**64 - 1), steps=StepsInput(field="steps", default=20)),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options: ComfyUIOptions = adapter_options(self.config)
        self._seed_paths = list(paths_of(self.options.workflow, "seed"))

    @classmethod
    def check_config(cls, config: ProviderConfig, options: ComfyUIOptions) -> None:
        if "count" not in set(placeholders_in(options.workflow)) and config.capabilities.max_images_per_request > 1:
            raise ValueError("capabilities.max_images_per_request: the workflow has no {{count}} placeholder, so it"
                             " makes one image a call; set it to 1")

    def _model_payload(self, payload: dict[str, Any], request: GenerationRequest, *, pin: ModelPin) -> dict[str, Any]:
        inputs = self.config.inputs_for(pin)
        values = {
            "prompt": request.prompt, "negative_prompt": request.params.get("negative_prompt", ""),
            "seed": request.batch_seed % ((inputs.seed.max if inputs.seed else 2**31 - 1) + 1),
            "width": payload.get(inputs.size.width_field, request.width),
            "height": payload.get(inputs.size.height_field, request.height), "count": request.count,
            "steps": payload.get(inputs.steps.field, DEFAULT_STEPS) if inputs.steps else DEFAULT_STEPS,
            "model": pin.remote,
            "filename_prefix": f"genline/{request.job_id}/{request.attempt}/{request.start_index}",
        }
        return filled(self.options.workflow, values)

    async def _submit(self, call: RemoteCall) -> dict[str, Any]:
        response = await self.http.request(ApiRequest(method="POST", url=self.url("/prompt"),
                                                      json={"prompt": call.payload, "client_id": CLIENT_ID}))
        if response.status_code == 400:
            kind: ErrorKind = "server_error" if _server_lacks_a_part(response) else "bad_request"
            raise ProviderError(kind=kind, message=f"{self.name}: ComfyUI refused the workflow: {response.text[:300]}")
        if response.status_code != 200:
            raise self._error(response)
        prompt_id = json_object(response, self.name).get("prompt_id")
        if not prompt_id:
            raise ProviderError(kind="server_error", message=f"{self.name}: /prompt answer has no prompt_id")
        return {"id": prompt_id}

    async def _poll(self, handle: dict[str, Any]) -> RemoteOutput | None:
        prompt_id = handle["id"]
        answer = await self._send(ApiRequest(method="GET", url=self.url(f"/history/{prompt_id}")), ok=(200,))
        history = json_object(answer, self.name)
        entry = history.get(prompt_id)
        if not entry:
            return None
        status = entry.get("status") or {}
        if status.get("status_str") == "error":
            raise _failure(prompt_id, status, provider=self.name)
        if not status.get("completed", True):
            return None
        seed = self._seed_ran(entry)
        return RemoteOutput(images=tuple(OutputImage(url=self._view_url(image), seed=seed)
                                         for image in output_images(entry, self.name)),
                            compute_s=execution_seconds(status))

    async def _cancel(self, handle: dict[str, Any]) -> None:
        prompt_id = handle["id"]
        await self._send(ApiRequest(method="POST", url=self.url("/queue"), json={"delete": [prompt_id]}), ok=(200,))
        if self.options.targeted_interrupt:
            # The server checks that this prompt is the one running, at the moment it interrupts.
            await self._send(ApiRequest(method="POST", url=self.url("/interrupt"), json={"prompt_id": prompt_id}), ok=(200,))

    def _view_url(self, image: dict[str, Any]) -> str:
        request = self.http.client.build_request("GET", self.url("/view"), params={
            "filename": image["filename"], "subfolder": image.get("subfolder", ""), "type": image.get("type", "output"),
        })
        return str(request.url)

    def _seed_ran(self, entry: dict[str, Any]) -> int | None:
        """The seed in the graph ComfyUI ran, where the workflow has a `{{seed}}`."""
        ran = entry.get("prompt")
        graph = ran[2] if isinstance(ran, list) and len(ran) > 2 and isinstance(ran[2], dict) else None
        for path in self._seed_paths if graph is not None else ():
            value = _at(graph, path)
            if isinstance(value, int):
                return value
        return None


def placeholders_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield from _PLACEHOLDER.findall(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from placeholders_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from placeholders_in(item)


def paths_of(value: Any, name: str, *, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where in the graph the string `{{name}}` stands alone."""
    if isinstance(value, str) and _PLACEHOLDER.fullmatch(value.strip()) and _PLACEHOLDER.findall(value) == [name]:
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from paths_of(item, name, path=(*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths_of(item, name, path=(*path, index))


def filled(workflow: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    def fill(value: Any) -> Any:
        if isinstance(value, str):
            whole = _PLACEHOLDER.fullmatch(value.strip())
            if whole:
                return values[whole[1]]
            return _PLACEHOLDER.sub(lambda m: str(values[m[1]]), value)
        if isinstance(value, dict):
            return {key: fill(item) for key, item in value.items()}
        if isinstance(value, list):
            return [fill(item) for item in value]
        return value
    graph: dict[str, Any] = fill(copy.deepcopy(workflow))
    return graph


def _at(graph: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        try:
            graph = graph[part]
        except (KeyError, IndexError, TypeError):
            return None
    return graph


# Inputs that name a file on the server (ckpt_name, lora_name, vae_name, unet_name, …).
_FILE_INPUT = re.compile(r"^[a-z_]*_name$")


def _server_lacks_a_part(response: httpx.Response) -> bool:
    """Whether ComfyUI refused the workflow for want of its own parts: a model file not in
    its list (`value_not_in_list` on a `*_name` input) or a node type it does not have."""
    try:
        body = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    error = object_at(body, "error")
    message = str(error.get("message", "")).lower()
    if error.get("type") == "missing_node_type" or (error.get("type") == "invalid_prompt" and "does not exist" in message):
        return True
    nodes = object_at(body, "node_errors")
    for node in nodes.values():
        for problem in (node.get("errors") or []) if isinstance(node, dict) else []:
            if not isinstance(problem, dict) or problem.get("type") != "value_not_in_list":
                continue
            name = (problem.get("extra_info") or {}).get("input_name", "")
            if _FILE_INPUT.match(str(name)):
                return True
    return False


def _failure(prompt_id: str, status: dict[str, Any], *, provider: str) -> ProviderError:
    kinds = {name for name, _ in (m for m in status.get("messages", []) if isinstance(m, list) and len(m) == 2)}
    if "execution_interrupted" in kinds:
        return ProviderError(kind="timeout", message=f"{provider}: prompt {prompt_id} was interrupted", terminal=True)
    return ProviderError(kind="server_error", message=f"{provider}: prompt {prompt_id} failed", terminal=True)


def output_images(entry: dict[str, Any], provider: str) -> list[dict[str, Any]]:
    images = [image for node in (entry.get("outputs") or {}).values() for image in node.get("images", [])
              if image.get("type", "output") == "output"]
    if not images:
        raise ProviderError(kind="bad_output", message=f"{provider}: finished prompt has no output images", terminal=True)
    return images


def execution_seconds(status: dict[str, Any]) -> float | None:
    """GPU time from the execution_start/execution_success timestamps (ms) in the status messages."""
    stamps = {m[0]: m[1].get("timestamp") for m in status.get("messages", [])
              if isinstance(m, list) and len(m) == 2 and isinstance(m[1], dict)}
    start, end = stamps.get("execution_start"), stamps.get("execution_success")
    if isinstance(start, (int, float)) and isinstance(end, (int, float)) and end >= start:
        return (end - start) / 1000
    return None
