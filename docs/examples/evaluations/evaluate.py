import os

from genline_client import Genline

with Genline() as client:  # GENLINE_API_URL, GENLINE_API_KEY
    job = client.jobs.wait(client.jobs.create("a ceramic mug on a wooden table", template="product", tier="low-cost"))

    # An image you were delivered, and one you bring (a path here; a URL or bytes also do).
    with open("mug-blurred.png", "wb") as blurred:
        from io import BytesIO

        from PIL import Image, ImageFilter
        image = Image.open(BytesIO(client.content(f"/v1/jobs/{job.id}/candidates/0/image")))
        image.filter(ImageFilter.GaussianBlur(8)).save(blurred, format="PNG")
    evaluation = client.evaluations.create(
        [{"delivered": {"job_id": str(job.id), "n": 1}}, "mug-blurred.png"],
        template="product", prompt="a ceramic mug on a wooden table")

for image in evaluation["images"]:
    print(image["source"], "passed" if image["passed"] else f"failed {image['failed']}",
          f"(measured up to tier {image['tier_reached']})")
    for name, dimension in image["dimensions"].items():
        if dimension["measured"] and not dimension["passed"]:
            print(f"  {name}: {dimension['reason']}")
print(f"{evaluation['charge']['credits']} credits")
delivered, blurred_image = evaluation["images"]
assert delivered["passed"] and not blurred_image["passed"] and "sharpness" in blurred_image["failed"]
assert os.path.exists("mug-blurred.png")
