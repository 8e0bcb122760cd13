"""Subjects: a person or a product a tenant's jobs may be of, known by the tenant's photos of it,
kept sealed under the subject's own data key and erased with everything made from it.

Its modules besides those named above:
    changes.py        a subject's changes, written and announced
    domain.py         a subject as clients see it, and how its state moves, without I/O
    examples.py       examples of the subjects API's bodies, as the OpenAPI document shows them
    judging.py        judging a subject's photos, without I/O
    lifecycle.py      a subject's life outside its photos
    views.py          a subject as the API shows it, built from its rows, and what is kept sealed of
                      it
"""
