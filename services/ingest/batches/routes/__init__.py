"""The batches' HTTP routes; they do not import one another.

    files.py     `/v1/files`: batch input files as OpenAI's Files API takes them, and their content
    batches.py   `/v1/batches`: OpenAI's Batch API
"""
