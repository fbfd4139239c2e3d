"""``heapq``/``uheapq`` stand-in: ``heappush``, ``heappop``, ``heapify``."""

from heapq import heapify, heappop, heappush  # noqa: F401
