"""Inputs: what a client sends besides its request, before anything is stored: uploaded and
reference photos screened, an input photo judged against its template's checks, and the
measurements of it asked of the scorer."""
