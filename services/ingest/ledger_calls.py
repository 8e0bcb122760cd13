"""Calls to the ledger over gRPC: its messages, its stub as a route dependency, and a call
whose errors become the API's problems."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeAlias

import grpc
from fastapi import Depends, Request

from services.common.problems import Problem
from services.common.protos import load

pb, rpc = load("genline.ledger.v1")
# The ledger's stub and its messages are built from the protos at install: they carry no types.
LedgerStub: TypeAlias = Any


async def ledger_stub(request: Request) -> LedgerStub:
    return request.app.state.ledger_stub


Ledger = Annotated[LedgerStub, Depends(ledger_stub)]


async def call_ledger(method: Callable[..., Awaitable[Any]], message: Any, timeout_s: float) -> Any:
    try:
        return await method(message, timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise Problem(422, "invalid-quote", exc.details()) from None
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise Problem(503, "ledger-unavailable", "the ledger does not answer; try again shortly",
                      {"Retry-After": "2"}, extra={"retry_after": 2}) from None
