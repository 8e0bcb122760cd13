"""Calls to the ledger over gRPC: its messages, its stub as a route dependency, and a call
whose errors become the API's problems."""

from typing import Annotated

import grpc
from fastapi import Depends, Request

from services.common.problems import Problem
from services.common.protos import load

pb, rpc = load("genline.ledger.v1")


async def ledger_stub(request: Request):
    return request.app.state.ledger_stub


Ledger = Annotated[object, Depends(ledger_stub)]


async def call_ledger(method, message, timeout_s: float):
    try:
        return await method(message, timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise Problem(422, "invalid-quote", exc.details()) from None
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise Problem(503, "ledger-unavailable", "the ledger does not answer; try again shortly",
                      {"Retry-After": "2"}, retry_after=2) from None
