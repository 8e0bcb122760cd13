import os

import openai

client = openai.OpenAI(base_url=os.environ["GENLINE_API_URL"] + "/v1", api_key=os.environ["GENLINE_API_KEY"],
                       max_retries=0)

# Each error is the exception the `openai` package gives OpenAI's own, with its param and code.
try:
    client.images.generate(prompt="a red bicycle", size="12x12")
except openai.BadRequestError as error:
    print(error.status_code, error.param, error.code)  # 400 size invalid_size
    assert error.param == "size"

try:
    client.images.generate(prompt="a red bicycle", model="midjourney-v9")
except openai.NotFoundError as error:
    print(error.status_code, error.code)  # 404 model_not_found
    assert error.code == "model_not_found"

try:
    openai.OpenAI(base_url=os.environ["GENLINE_API_URL"] + "/v1", api_key="gl_wrong", max_retries=0).images.generate(
        prompt="a red bicycle")
except openai.AuthenticationError as error:
    print(error.status_code, error.code)  # 401 invalid_api_key
    assert error.code == "invalid_api_key"
