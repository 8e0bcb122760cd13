"""Batches, as OpenAI's Batch API runs them: a JSONL file of requests, each run as a job at
bulk priority, with output and error files that keep each line's `custom_id`. One feature
package: its routes, its rules and its SQL. Its face exports nothing: app.py mounts its routes
and starts its runner, and no other feature needs it.

routes/      `/v1/files` (files.py: input files as OpenAI's Files API takes them, their content) and
             `/v1/batches` (batches.py: OpenAI's Batch API)
store.py     batches' SQL: input files and their chunks, batches, each line's job or refusal, the
             runner's lease, the counts a batch shows and the pages its output and error files are
             made from

jsonl.py     an input file read line by line from the upload, each line checked, stored in chunks
models.py    files and batches as OpenAI's APIs show them, and the request that makes a batch
lines.py     a line as the job it asks for; a recorded line as its output or error file's line
runner.py    the runner: a window of lines submitted at a time, recorded durably, a batch ended
results.py   the files' content streamed: an input chunk by chunk, results a page of lines at a time

Its modules besides those named above:
    multipart.py      a multipart/form-data body read as it streams
"""
