"""ComfyUI with the operator's workflow: placeholders filled with the request's values, the
workflow checked when the registry loads, the seed read back from what ComfyUI ran, and a
cancel that never interrupts another client's prompt: `/interrupt` names the prompt, which
the server interrupts only if it is the one running; an older server, which stops whatever
runs, is declared (`targeted_interrupt: false`) and never interrupted."""

import copy

import httpx
import pytest

from services.router.providers.base import ProviderError
from services.router.providers.comfyui import DEFAULT_WORKFLOW
from services.router.providers.registry import RegistryError, parse_registry
from tests.router.market import Script
from tests.router.stubs import entry, simulated
from tests.router.test_conformance import adapter_over, request_for

FLUX_WORKFLOW = copy.deepcopy(DEFAULT_WORKFLOW) | {
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "photo, {{prompt}}, 35mm", "clip": ["4", 1]}},
    "10": {"class_type": "FluxGuidance", "inputs": {"guidance": 3.5, "conditioning": ["6", 0]}},
}


# The model's inputs as the workflow's placeholders take them: twelve steps.
MODEL = {"remote_id": "flux1-dev-fp8.safetensors", "inputs": {
    "size": {"multiple_of": 8}, "count": {"field": "count", "max": 4}, "seed": {"field": "seed"},
    "steps": {"field": "steps", "default": 12}}}


def workflow_entry(simulator, workflow, **changes) -> dict:
    return entry(simulator, options={"workflow": workflow}, **changes)


async def test_the_operators_workflow_is_sent_with_its_placeholders_filled(comfyui, client):
    request = request_for("comfyui")
    images = await adapter_over(comfyui, client, options={"workflow": FLUX_WORKFLOW}, model=MODEL).generate(request)
    [job] = comfyui.market.submissions
    graph = job.body["prompt"]
    assert graph["6"]["inputs"]["text"] == "photo, a lighthouse, 35mm"
    assert graph["3"]["inputs"]["seed"] == request.batch_seed and graph["3"]["inputs"]["steps"] == 12
    assert graph["5"]["inputs"] == {"width": 512, "height": 512, "batch_size": 2}
    assert graph["4"]["inputs"]["ckpt_name"] == "flux1-dev-fp8.safetensors"
    assert graph["10"] == FLUX_WORKFLOW["10"]
    assert [image.seed for image in images] == [request.batch_seed] * 2  # as ComfyUI ran it


@pytest.mark.parametrize("workflow, message", [
    ({"1": {"class_type": "KSampler", "inputs": {"seed": "{{sede}}"}}}, "{{sede}} is unknown"),
    ({"1": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}}, "no {{prompt}} placeholder"),
    ({"1": {"inputs": {"text": "{{prompt}}"}}}, "API format"),
])
def test_a_workflow_is_checked_when_the_registry_loads(comfyui, workflow, message):
    with pytest.raises(RegistryError, match="providers.comfy") as raised:
        parse_registry({"providers": {"comfy": workflow_entry(comfyui, workflow)}})
    assert message in str(raised.value)


def test_a_workflow_without_a_count_makes_one_image_a_call(comfyui):
    single = copy.deepcopy(DEFAULT_WORKFLOW)
    single["5"]["inputs"]["batch_size"] = 1
    with pytest.raises(RegistryError, match="capabilities.max_images_per_request"):
        parse_registry({"providers": {"comfy": workflow_entry(comfyui, single)}})
    registry = parse_registry({"providers": {"comfy": workflow_entry(comfyui, single, max_batch=1)}})
    assert registry.provider("comfy").max_batch == 1


THEIR_WORKFLOW = {"3": {"class_type": "KSampler", "inputs": {"seed": 1}},
                           "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64,
                                                                               "batch_size": 1}},
                           "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "theirs"}},
                           "9": {"class_type": "SaveImage", "inputs": {}}}


async def another_clients_prompt(simulator) -> str:
    """A prompt some other client queued first: ComfyUI runs it while ours waits."""
    async with httpx.AsyncClient() as other:
        answer = await other.post(f"{simulator.url}/prompt", json={"prompt": THEIR_WORKFLOW,
                                                                   "client_id": "someone"})
    return answer.json()["prompt_id"]


@pytest.mark.parametrize("targeted", [True, False], ids=["recent server", "older server"])
async def test_cancelling_a_waiting_prompt_never_interrupts_the_one_running(targeted, client):
    with simulated("comfyui", targeted_interrupt=targeted) as simulator:
        simulator.market.reset(Script(latency_s=30))
        theirs = await another_clients_prompt(simulator)
        with pytest.raises(ProviderError, match="timeout"):
            await adapter_over(simulator, client, overall_s=3, options={"targeted_interrupt": targeted}).generate(
                request_for("comfyui", timeout_s=3))
        ours = simulator.market.submissions[1]
        assert simulator.market.interrupts == []
        assert ours.cancelled_at is not None and simulator.market.jobs[theirs].cancelled_at is None


async def test_cancelling_our_running_prompt_interrupts_it_by_its_id(comfyui, client):
    comfyui.market.reset(Script(latency_s=30))
    with pytest.raises(ProviderError, match="timeout"):
        await adapter_over(comfyui, client, overall_s=3).generate(request_for("comfyui", timeout_s=3))
    [ours] = comfyui.market.submissions
    assert comfyui.market.interrupts == [ours.id]


async def test_a_server_declared_older_is_never_interrupted(client):
    with simulated("comfyui", targeted_interrupt=False, lists_running=False) as simulator:
        simulator.market.reset(Script(latency_s=30))
        with pytest.raises(ProviderError, match="timeout"):
            await adapter_over(simulator, client, overall_s=3, options={"targeted_interrupt": False}).generate(
                request_for("comfyui", timeout_s=3))
        [ours] = simulator.market.submissions
        assert simulator.market.interrupts == [] and ours.cancelled_at is None
