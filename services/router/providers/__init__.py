"""Image providers: one adapter module per provider API, its entry in providers.yaml, and the
trainers. A provider with several modules has a package of its own, holding all of it (its
adapter, its trainer, what only it needs); below them, the machinery every adapter shares.

    adapters.py            adapters by name, so that a new provider API is one new module in this
                           package
    base.py                the one interface every image provider adapter implements, and its values
                           and errors
    bfl.py                 Black Forest Labs' FLUX API (https://api.bfl.ai, its OpenAPI document
                           "BFL API")
    billing.py             what a hosted job costs, and how that is spread over the images it gave
    comfyui.py             ComfyUI's server routes (comfyanonymous/ComfyUI, server.py)
    copies.py              copies of a remote job's fetched outputs, kept where a resumed call finds
                           them
    entry_parts.py         the parts a provider's entry in the registry (registry.py) is made of
    factory.py             adapters built from the registry: one `Provider` per configured provider
    hosted_files.py        files a provider keeps for its models' inputs: a subject's photos, never
                           inline
    identity_inputs.py     how a model carries a subject's identity (`inputs.identity` in
                           providers.yaml), and the identity a call carries
    image_stages.py        what the built-in local providers do to an image at each stage, on the
                           CPU and offline
    inputs.py              how one model takes its inputs, declared per model in providers.yaml
    journal.py             where remote jobs are written down, so that none is paid for twice
    model_calls.py         a request turned into what one call sends a model
    openai_images.py       OpenAI's Images API, and the servers that speak it
                           (openai/openai-openapi, createImage)
    outputs.py             what an image (or a clip) from a provider must be before it counts as a
                           candidate
    payloads.py            images in JSON bodies
    registry.py            the provider registry: which providers exist, what they can do and what
                           they cost
    remote.py              what the HTTP adapters share: one submit → write down → wait → fetch →
                           check flow
    remote_calls.py        a hosted provider's call and what its job gives back
    runware.py             Runware's task API (runware.ai/docs)
    stability.py           Stability AI's Stable Image API, v2beta (its OpenAPI document,
                           "Generate")
    trainers.py            trainers: a subject's identity trained at a provider, as a remote job
    training_config.py     a trainer, declared under a provider's `trainer` in providers.yaml
    transport.py           HTTP for provider adapters
    webhooks.py            providers' callbacks: verified, then they wake the poller of their remote
                           job
    fal/                   fal: its queue API and its queue trainers
    local/                 the local provider, offline: its adapter, painter, portraits, clips and
                           trainer
    replicate/             Replicate: its predictions API and its trainings API
"""
