import os

import httpx

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM's own price list, not fetched
import litellm  # noqa: E402

# LiteLLM routes `openai/<model>` to any OpenAI-compatible server named by api_base.
response = litellm.image_generation(model="openai/dall-e-3", prompt="a lighthouse at dusk", size="256x256",
                                    api_base=os.environ["GENLINE_API_URL"] + "/v1",
                                    api_key=os.environ["GENLINE_API_KEY"])

url = response.data[0].url  # dall-e-3 answers links (signed, valid for an hour), as OpenAI's does
print(url)
assert httpx.get(url, timeout=10).status_code == 200
