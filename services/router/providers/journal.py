"""Where remote jobs are written down, so that none is paid for twice.

An adapter of a queued API writes its job's handle (what it needs to poll and cancel it)
before it polls the first time, and the job's end when it ends. Before it submits, it
looks for a job of the same call that is still running or succeeded: that one is polled
again instead (after a restart its images were never stored). The engine asks for every
such job of an attempt before it plans new calls (`unfinished`), so that a restarted router
resumes them whatever its new plan would be.

The service keeps the journal in PostgreSQL, with the attempt (`store.RemoteJobs`);
`MemoryJournal` serves tests and the benchmark.
"""

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

RemoteJobState = Literal["running", "succeeded", "failed", "canceled"]
# States after which a job's images can still be fetched, or will be.
RESUMABLE: frozenset[str] = frozenset({"running", "succeeded"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteJobKey:
    """One call: these candidates of this attempt and stage, on this provider."""

    job_id: str
    attempt: int
    capability: str
    provider: str
    start_index: int
    count: int


@dataclass(frozen=True, slots=True)
class RemoteJob:
    key: RemoteJobKey
    handle: dict[str, Any]
    state: RemoteJobState = "running"


class RemoteJobJournal(Protocol):
    async def started(self, key: RemoteJobKey, handle: dict[str, Any]) -> None: ...

    async def ended(self, key: RemoteJobKey, state: RemoteJobState) -> None: ...

    async def resumable(self, key: RemoteJobKey) -> RemoteJob | None: ...

    async def unfinished(self, job_id: str, attempt: int, *, capability: str) -> list[RemoteJob]: ...


@dataclass
class MemoryJournal:
    jobs: dict[RemoteJobKey, RemoteJob] = field(default_factory=dict)

    async def started(self, key: RemoteJobKey, handle: dict[str, Any]) -> None:
        self.jobs[key] = RemoteJob(key, handle)

    async def ended(self, key: RemoteJobKey, state: RemoteJobState) -> None:
        if key in self.jobs:
            self.jobs[key] = RemoteJob(key, self.jobs[key].handle, state)

    async def resumable(self, key: RemoteJobKey) -> RemoteJob | None:
        job = self.jobs.get(key)
        return job if job is not None and job.state in RESUMABLE else None

    async def unfinished(self, job_id: str, attempt: int, *, capability: str) -> list[RemoteJob]:
        return [job for key, job in self.jobs.items() if (key.job_id, key.attempt, key.capability)
                == (job_id, attempt, capability) and job.state in RESUMABLE]
