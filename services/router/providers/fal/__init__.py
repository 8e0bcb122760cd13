"""fal, all of it: its queue API and the trainers that run on that queue.

    queue.py       fal's queue API (docs.fal.ai, "Queue"; the fal-ai/fal client `fal_client`),
                   and fal's storage, where a training's photos are uploaded
    training.py    fal's queue trainers: a training is a queue request like any other
"""
