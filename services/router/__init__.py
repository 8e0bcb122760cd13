"""The router: admitted jobs become candidates, generated where a passing image is cheapest.

app.py             the service: bus consumers, scheduler, gRPC server, metrics
__main__.py        `python -m services.router`
handlers.py        events in: admitted jobs and rework requests become attempts; verdicts teach
scheduler.py       which attempt runs next, and when to stop taking work
fairness.py        the queue order: tenants in fair turns (plans as shares), then job priority and tier
generation.py      one attempt of one job, from its claim to the event that announces it
pipeline.py        a template's stages for one attempt, each routed like generation
engine.py          `RoutingEngine`: one attempt's batches and calls (its docstring tells the attempt)
routing_types.py   what an attempt takes and gives: policy and its settings, request, quotes,
                   plan, call records, errors
planning.py        the plan without I/O: pass-rate estimates, capable providers, their
                   ranking, how many candidates
styles.py          which style each candidate of an order across styles is made in
subjects/          orders of a subject: how each carries its identity (choosing.py), an attempt
                   made ready (orders.py), trainings driven as remote jobs and identities erased
                   (training.py), the subject's photos and weights (files.py), their tables (store.py)
capacity.py        what a call reserves (a provider slot, its share of the cost cap); waiting for slots
health.py          each provider's health: circuit and quality breakers, AIMD limits, retry
                   backoff, timeouts on the clock, learnt ratios, how calls update them, its status
clock.py           the event loop's clock and a simulated one that skips idle time
domain.py          router rules without I/O: what an attempt asks for, when a job can get no more
store.py           the router's tables: jobs, attempts and claims, outcomes, remote jobs, verdicts
grpc.py            the gRPC server: ListProviders
routes.py          the route providers call back on (POST /webhooks/providers/{provider})
metrics.py         provider calls, latency, spend and breaker state
settings.py        the router's settings
providers.yaml     the shipped provider registry
providers/         base.py (the adapter interface, its errors), registry.py (providers.yaml's
                   model), inputs.py (how a model takes its inputs, a
                   video model a clip's length, shape, rate and frames), identity_inputs.py (how
                   a model carries a subject: a LoRA by URL, reference photos), training_config.py
                   (a trainer's declaration), model_calls.py (a
                   request turned into a model's input), adapters.py (adapters by
                   name) and factory.py (adapters from the registry); remote.py (the flow every
                   hosted adapter shares: submit, write down, poll, fetch, check, cancel),
                   remote_calls.py (a hosted call and its job's output), billing.py (what a
                   job costs, spread over its images),
                   transport.py (HTTP: whose key goes where, redirects, size caps, the error
                   table), outputs.py (image and clip checks), journal.py (remote jobs written down),
                   copies.py (fetched outputs copied to the internal bucket),
                   webhooks.py (signed callbacks), trainers.py (a trainer's interface and
                   input), image_stages.py (the built-in stages' image operations); one module
                   per API: comfyui, openai_images, bfl, stability, runware; a package per
                   provider with several, each holding all of that provider: fal/ (its queue,
                   its trainers), replicate/ (its predictions, its trainings), local/ (the
                   offline provider: its adapter, painter, portraits of a subject with planted
                   defects, MP4 clips, trainer)
migrations/        the router's schema

Its modules besides those named above:
    chunks.py         an attempt's candidates stored as its calls return them, and announced in
                      chunks
"""
