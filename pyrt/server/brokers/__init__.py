"""Brokers: :class:`MemoryBroker` (one process) and ``RedisBroker`` (Redis Streams, many instances).

``RedisBroker`` is imported from :mod:`pyrt.server.brokers.redis`.
"""

from pyrt.server.brokers.base import Broker, BrokerError, History, Publication
from pyrt.server.brokers.memory import MemoryBroker

__all__ = ["Broker", "BrokerError", "History", "MemoryBroker", "Publication"]
