import io
import json
import os
import time

from openai import OpenAI

client = OpenAI(base_url=os.environ["GENLINE_API_URL"] + "/v1", api_key=os.environ["GENLINE_API_KEY"])

# A request a line: its custom_id (yours, unique in the file), the url and the body that url takes.
products = ["a ceramic mug", "a linen tote bag", "a walnut desk lamp"]
lines = [{"custom_id": f"sku-{n}", "method": "POST", "url": "/v1/images/generations",
          "body": {"model": "gpt-image-1", "prompt": f"{product} on a white background", "size": "256x256",
                   "quality": "low", "response_format": "url"}}
         for n, product in enumerate(products)]
jsonl = "".join(json.dumps(line) + "\n" for line in lines).encode()

uploaded = client.files.create(file=("catalogue.jsonl", io.BytesIO(jsonl)), purpose="batch")
batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/images/generations",
                              completion_window="24h", metadata={"catalogue": "autumn"})

while batch.status not in ("completed", "failed", "expired", "cancelled"):
    time.sleep(2)
    batch = client.batches.retrieve(batch.id)
print(batch.status, batch.request_counts)

# The output file: a line per request that delivered, under its custom_id, with what the url answers.
for line in client.files.content(batch.output_file_id).text.splitlines():
    result = json.loads(line)
    answer = result["response"]["body"]
    print(result["custom_id"], answer["data"][0]["url"][:60], f"{answer['cost']['credits_charged']} credits")
    assert answer["cost"]["credits_charged"] == 2  # generic low-cost: 5 credits, half price in a batch
assert batch.request_counts.completed == len(products)
