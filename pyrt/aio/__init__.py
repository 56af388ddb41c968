"""The asyncio layer: the public clients and the driver that pumps their engines."""
