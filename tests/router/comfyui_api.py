"""A simulator of ComfyUI's server API: prompts, the queue, history, interrupts and views."""


from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.router.market import Market, SimJob, fixture, served_image

# ---- ComfyUI ------------------------------------------------------------------------------


def comfyui_app(market: Market, targeted_interrupt: bool = True, lists_running: bool = True) -> Starlette:
    """`targeted_interrupt`: /interrupt honours a prompt_id (recent servers); `lists_running`:
    GET /queue says which prompt runs (else, as a proxy that hides it, only how many wait)."""
    def error(status: int) -> Response:
        if status == 400:  # the server lacks the workflow's checkpoint
            return JSONResponse(fixture("comfyui/prompt_error_missing_model.json"), status_code=400)
        # ComfyUI has no limits of its own; a proxy in front of it answers these.
        headers = {"retry-after": f"{market.script.retry_after_s:g}"} if market.script.retry_after_s is not None \
            else {}
        return JSONResponse({"error": f"HTTP {status}"}, status_code=status, headers=headers)

    async def prompt(request: Request) -> Response:
        given = await request.json()
        graph = given.get("prompt") or {}
        if (refusal := market.refusal(error)) is not None:
            return refusal
        nodes = {node.get("class_type"): node.get("inputs", {}) for node in graph.values() if isinstance(node, dict)}
        if not {"KSampler", "EmptyLatentImage", "CLIPTextEncode", "SaveImage"} <= set(nodes):
            return JSONResponse(fixture("comfyui/prompt_error.json"), status_code=400)
        latent = nodes["EmptyLatentImage"]
        texts = [n["inputs"]["text"] for n in graph.values() if n.get("class_type") == "CLIPTextEncode"]
        job = market.submit(prompt=texts[0], seed=nodes["KSampler"]["seed"], count=latent["batch_size"],
                            width=latent["width"], height=latent["height"], body=given, headers=dict(request.headers))
        return JSONResponse(fixture("comfyui/prompt.json") | {"prompt_id": job.id, "number": job.number})

    async def history(request: Request) -> Response:
        if (fault := market.poll_fault(error)) is not None:
            return fault
        job = market.jobs.get(request.path_params["pid"])
        if job is None:
            return JSONResponse({})
        job.polls += 1
        state = market.state(job)
        if state == "running":
            return JSONResponse({})
        template = fixture("comfyui/history_success.json")
        entry = next(iter(template.values()))
        entry["prompt"] = [job.number, job.id, job.body["prompt"], {"client_id": job.body.get("client_id")}, ["9"]]
        entry["outputs"] = {"9": {"images": [{"filename": f"{job.id}_{n}.png", "subfolder": "", "type": "output"}
                                             for n in range(job.count)]}}
        if state != "succeeded":
            ended = "execution_interrupted" if state in ("canceled", "interrupted") else "execution_error"
            entry["status"] = {"status_str": "error", "completed": False,
                               "messages": [["execution_start", {"prompt_id": job.id, "timestamp": 1}],
                                            [ended, {"prompt_id": job.id, "timestamp": 2}]]}
            entry["outputs"] = {}
        return JSONResponse({job.id: entry})

    async def view(request: Request) -> Response:
        if request.query_params.get("type") != "output":
            return JSONResponse({"detail": "not found"}, status_code=404)
        job_id, _, n = request.query_params["filename"].removesuffix(".png").rpartition("_")
        return served_image(market, job_id, int(n))

    def running_and_pending() -> tuple[list[SimJob], list[SimJob]]:
        live = [j for j in market.jobs.values() if market.state(j) == "running" and j.cancelled_at is None]
        return live[:1], live[1:]  # ComfyUI runs one prompt at a time

    async def get_queue(request: Request) -> Response:
        running, pending = running_and_pending()
        if not lists_running:
            return JSONResponse({"exec_info": {"queue_remaining": len(running) + len(pending)}})
        def item(job: SimJob) -> list:
            return [job.number, job.id, job.body["prompt"], {"client_id": job.body.get("client_id")}, ["9"]]
        return JSONResponse({"queue_running": [item(j) for j in running], "queue_pending": [item(j) for j in pending]})

    async def post_queue(request: Request) -> Response:
        _, pending = running_and_pending()
        for prompt_id in (await request.json()).get("delete", []):
            if any(job.id == prompt_id for job in pending):
                market.cancel(prompt_id)
        return Response(status_code=200)

    async def interrupt(request: Request) -> Response:
        try:
            asked = (await request.json()).get("prompt_id")
        except ValueError:
            asked = None
        running, _ = running_and_pending()
        for job in running:
            if asked is None or not targeted_interrupt or job.id == asked:
                market.interrupts.append(job.id)
                market.cancel(job.id)
        return Response(status_code=200)

    return Starlette(routes=[
        Route("/prompt", prompt, methods=["POST"]),
        Route("/history/{pid}", history, methods=["GET"]),
        Route("/view", view, methods=["GET"]),
        Route("/queue", get_queue, methods=["GET"]),
        Route("/queue", post_queue, methods=["POST"]),
        Route("/interrupt", interrupt, methods=["POST"]),
    ])
