"""OpenAI's APIs in Genline's terms: what the `openai` package and LiteLLM send, as the jobs
it asks for, and what a job did, as OpenAI answers.

errors.py     errors in OpenAI's shape, with the statuses the `openai` package reads as its exceptions
models.py     what `model` names: a template, or an alias the operator maps (models.yaml)
images.py     an images request as a job's request, a final job as OpenAI's images answer, without I/O
outcomes.py   how a job's end answers a call: its images, or the error OpenAI would give
forms.py      the multipart form of an edit, bounded before it is read
waiting.py    a call waiting for its job, and the job's images as links or base64
calls.py      one images call: submitted as a job, waited for, answered
"""
