"""Evaluations: images the line did not make, judged by the scorer's engine as a job's
candidates are, and charged per image judged; no generation, no provider call. One feature
package: its routes, its rules and its SQL. Its face exports nothing: app.py mounts its routes
and starts its runner, and no other feature needs it.

routes.py    `/v1/evaluations`: an evaluation judged at once, a batch of them, and their pages
store.py     evaluations' SQL

models.py    the request (images from an upload, a URL, a delivered image or base64; a template or
             profile, rules, reference photos) and the verdicts shown
sources.py   each image screened and stored from its source; a URL fetched behind the SSRF guard
judging.py   the profile checked, the scorer asked for verdicts, the ledger for the charge
work.py      an evaluation worked a window of images at a time, charged once, and shown
runner.py    batches in the background, a window a round; the webhook of an ended batch
"""
