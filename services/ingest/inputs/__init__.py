"""Inputs: what a client sends besides its request, before anything is stored: uploaded and
reference photos screened, an input photo judged against its template's checks, and the
measurements of it asked of the scorer.

Its modules:
    guidance.py       guidance: an input photo judged against its template's checks, before a job is
                      accepted
    moderation.py     the optional hosted moderation adapter
    prompt_rules.py   prompt screening, without I/O
    scorer_calls.py   what ingest asks of the scorer's internal API
    screening.py      screening of uploaded photos: what a client sends is stored only as a clean
                      image
"""
