"""The demo's headshot order: a subject made through the public API from eight photos of one
person (the stack's demo portrait, framed eight ways) and a ninth of someone else (the photograph
the stack ships as `demo/someone_else.jpg`), refused with its reason; its identity trained by the local trainer for an
order of six pictures across the six styles of `subject-headshots`, followed to the end."""

import base64
from typing import Any

import httpx

from genline_stack.demo import Say, follow_job
from genline_stack.portraits import demo_photograph, jpeg, poses

# Six pictures, one per style, from twelve candidates: the identity trained for them.
IMAGES, CANDIDATES = 6, 12


def demo_photos() -> list[bytes]:
    """Eight photos of the demo's person with someone else's fifth, as a customer might send them."""
    someone_else = jpeg(demo_photograph("someone_else.jpg").convert("RGB"))
    photos = poses(demo_photograph("portrait.jpg"), 8)
    return photos[:4] + [someone_else] + photos[4:]


def make_subject(client: httpx.Client, say: Say) -> dict[str, Any]:
    photos = [base64.b64encode(photo).decode() for photo in demo_photos()]
    response = client.post("/v1/subjects", json={"kind": "person", "name": "demo", "photos": photos}, timeout=120)
    response.raise_for_status()
    subject: dict[str, Any] = response.json()
    say(f"demo subject {subject['id']}: {subject['state']}, {subject['photos_accepted']} photos accepted")
    for photo in subject["photos"]:
        if not photo["accepted"]:
            say(f"  photo {photo['n']} refused: {'; '.join(photo['reasons'])}")
    return subject


def run_subject_demo(ingest_url: str, api_key: str, *, say: Say = print) -> bool:
    """The subject made, then its order trained and followed; whether it delivered pictures, as
    the first demo job asks: an order short of a style's passing picture ends partially
    succeeded, delivering and charging what passed, which is the platform doing its work."""
    with httpx.Client(base_url=ingest_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10) as client:
        job = subject_order(client, say)
    return bool(job["outputs"])


def subject_order(client: httpx.Client, say: Say) -> dict[str, Any]:
    subject = make_subject(client, say)
    response = client.post("/v1/jobs", json={"prompt": "professional headshot", "template": "subject-headshots",
                                             "subject": subject["id"], "identity": "lora", "images": IMAGES,
                                             "candidates": CANDIDATES})
    response.raise_for_status()
    job_id = response.json()["id"]
    say(f"demo headshot order {job_id} submitted (identity trained for it)")
    job = follow_job(client, job_id, say=say)
    identity = (job.get("subject") or {}).get("identity") or {}
    say(f"  identity: {identity.get('mode')} by {identity.get('model')}, weights {identity.get('weights_sha256')}")
    styles = {score["style"] for score in job["scores"] if score["index"] in job["selected"]}
    say(f"  {len(job['outputs'])} of {job['images']} pictures delivered, in styles {', '.join(sorted(styles))}")
    if job["state"] == "partially_succeeded":
        say("  partially succeeded: a style had no candidate that passed, and only what was delivered is charged")
    for output in job["outputs"]:
        say(f"    {output['n']}. {output['url']}")
    return job
