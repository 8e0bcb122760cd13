import base64
import os
import uuid

from openai import OpenAI

# Nothing changes but the base URL and the key: Genline answers OpenAI's Images API.
client = OpenAI(base_url=os.environ["GENLINE_API_URL"] + "/v1", api_key=os.environ["GENLINE_API_KEY"])

# Send an Idempotency-Key: the client's own retries (after a timeout, a 5xx) then wait on the same
# job instead of submitting another, and GET /v1/idempotency-keys/{key} finds it.
key = f"poster-{uuid.uuid4()}"
raw = client.images.with_raw_response.generate(
    model="gpt-image-1", prompt="a red bicycle against a brick wall", n=1, size="512x512", quality="low",
    user="customer-42", extra_headers={"Idempotency-Key": key},
    extra_body={"candidates": 2},  # Genline's own: the candidates generated and scored for the one delivered
)
result = raw.parse()

with open("bicycle.png", "wb") as image:
    image.write(base64.b64decode(result.data[0].b64_json))
job_id = raw.headers["genline-job-id"]
print(f"job {job_id}: {result.size} {result.output_format}, {result.cost['credits_charged']} credits,"
      f" {result.usage.images} image(s) from {result.usage.candidates} candidates")
assert result.job_id == job_id and result.cost["credits_charged"] == 5  # generic, low-cost
