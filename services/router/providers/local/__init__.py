"""The local provider, all of it, offline and on the CPU: the adapter, what it paints with, and
the trainer of a subject's identity for its portrait model.

    provider.py            the local provider: `LocalGenerator` behind the provider interface,
                           with a character
    painter.py             the built-in painter: seeded, deterministic PNG paintings
    painting_workers.py    its paintings, made in worker processes that give way
    subject_portraits.py   its portraits of a subject
    clip_maker.py          its clips: real MP4 files made offline, with labelled defects
    trainer.py             the local trainer: a subject's identity trained offline, for the
                           local portrait model
    portraits/             the local portrait model (provider.py runs it for a provider that
                           declares `capabilities.identity`)
"""
