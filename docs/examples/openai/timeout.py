import os
import time
import uuid

import httpx
from openai import APITimeoutError, OpenAI

base, api_key = os.environ["GENLINE_API_URL"], os.environ["GENLINE_API_KEY"]
impatient = OpenAI(base_url=base + "/v1", api_key=api_key, timeout=0.5, max_retries=0)
key = f"catalogue-cover-{uuid.uuid4()}"

try:
    impatient.images.generate(prompt="a catalogue cover of ceramic mugs", size="256x256",
                              extra_headers={"Idempotency-Key": key})
except APITimeoutError:
    # The job goes on: the key you sent names it.
    time.sleep(1)
    bound = httpx.get(f"{base}/v1/idempotency-keys/{key}", headers={"Authorization": f"Bearer {api_key}"}).json()
    print(f"the call timed out; its job is {bound['job_id']} ({bound['url']})")

    # The same call again, with time to wait, is answered by that job: one job, charged once.
    patient = OpenAI(base_url=base + "/v1", api_key=api_key)
    again = patient.images.generate(prompt="a catalogue cover of ceramic mugs", size="256x256",
                                    extra_headers={"Idempotency-Key": key})
    assert again.job_id == bound["job_id"]
