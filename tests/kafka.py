"""Reading a topic from the beginning, as an auditor would."""

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer


async def read_topic(bootstrap: str, topic: str, want: int, timeout_s: float = 30) -> list:
    """Records of `topic` from offset 0 until `want` are read or `timeout_s` passes."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"reader-{uuid.uuid4()}", enable_auto_commit=False)
    await consumer.start()
    records = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(records) < want and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            records += [r for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    return records
