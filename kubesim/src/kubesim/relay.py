"""Copying bytes between two asyncio streams, as the Service proxy and the stand-in's relay need."""

from __future__ import annotations

import asyncio

__all__ = ["pipe"]


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunk: int = 65536) -> None:
    """Copy until EOF, then half-close; a broken peer closes the other side."""
    try:
        while data := await reader.read(chunk):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()
