"""ComfyUI server API.

    POST {endpoint}/prompt  {prompt: <workflow in API format>, client_id}  → {prompt_id, number, node_errors}
    GET  {endpoint}/history/{prompt_id}   → {} while queued or running;
                                            {prompt_id: {status: {status_str, completed}, outputs}} when done
    GET  {endpoint}/view?filename=…&subfolder=…&type=output                → the image bytes
    POST {endpoint}/queue {delete: [prompt_id]} and POST {endpoint}/interrupt  → cancel

The workflow is a plain text-to-image graph (checkpoint → CLIP text encode → empty latent
of `count` images → KSampler → VAE decode → SaveImage); the pinned model's `remote_id`
is the checkpoint file. ComfyUI has no authentication of its own; a secret, when
configured, is sent as a bearer token for the proxy in front of it. It runs no stage other
than generate: its graphs are text-to-image, and `stages` is refused in its configuration.
"""

from typing import Any

from services.router.providers.base import GenerationRequest, ProviderError
from services.router.providers.registry import ModelPin
from services.router.providers.remote import RemoteOutput, RemoteProvider, json_body

CLIENT_ID = "genline-router"
SAVE_NODE = "9"


class ComfyUIProvider(RemoteProvider):
    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"} if self.secret else {}

    def _prompt_input(self, request: GenerationRequest, pin: ModelPin) -> dict[str, Any]:
        return text_to_image_workflow(request, pin.remote)

    async def _submit(self, request: GenerationRequest, pin: ModelPin, payload: dict[str, Any]) -> str:
        response = await self._send("POST", f"{self.config.endpoint}/prompt",
                                    json={"prompt": payload, "client_id": CLIENT_ID},
                                    headers={"Idempotency-Key": request.idempotency_key})
        prompt_id = json_body(response, self.name).get("prompt_id")
        if not prompt_id:
            raise ProviderError("server_error", f"{self.name}: /prompt answer has no prompt_id")
        return prompt_id

    async def _poll(self, prompt_id: str) -> RemoteOutput | None:
        history = json_body(await self._send("GET", f"{self.config.endpoint}/history/{prompt_id}"), self.name)
        entry = history.get(prompt_id)
        if not entry:
            return None
        status = entry.get("status") or {}
        if status.get("status_str") == "error":
            raise ProviderError("server_error", f"{self.name}: prompt {prompt_id} failed")
        if not status.get("completed", True):
            return None
        return RemoteOutput(image_urls=tuple(self._view_url(image) for image in output_images(entry)),
                            compute_s=execution_seconds(status))

    async def _cancel(self, prompt_id: str) -> None:
        await self._send("POST", f"{self.config.endpoint}/queue", json={"delete": [prompt_id]})
        await self._send("POST", f"{self.config.endpoint}/interrupt", json={"prompt_id": prompt_id})

    def _view_url(self, image: dict[str, Any]) -> str:
        query = self.client.build_request("GET", f"{self.config.endpoint}/view", params={
            "filename": image["filename"], "subfolder": image.get("subfolder", ""), "type": image.get("type", "output"),
        }).url
        return str(query)


def text_to_image_workflow(request: GenerationRequest, checkpoint: str) -> dict[str, Any]:
    return {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": request.seed_for(request.start_index), "steps": 20, "cfg": 7.0, "sampler_name": "euler",
            "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0],
            "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": request.width, "height": request.height, "batch_size": request.count}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": request.prompt, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        SAVE_NODE: {"class_type": "SaveImage", "inputs": {
            "filename_prefix": f"genline/{request.job_id}/{request.attempt}/{request.start_index}",
            "images": ["8", 0]}},
    }


def output_images(entry: dict[str, Any]) -> list[dict[str, Any]]:
    images = [image for node in (entry.get("outputs") or {}).values() for image in node.get("images", [])
              if image.get("type", "output") == "output"]
    if not images:
        raise ProviderError("server_error", "comfyui: finished prompt has no output images")
    return images


def execution_seconds(status: dict[str, Any]) -> float | None:
    """GPU time from the execution_start/execution_success timestamps (ms) in the status messages."""
    stamps = {name: data.get("timestamp") for name, data in status.get("messages", []) if isinstance(data, dict)}
    start, end = stamps.get("execution_start"), stamps.get("execution_success")
    if isinstance(start, (int, float)) and isinstance(end, (int, float)) and end >= start:
        return (end - start) / 1000
    return None
