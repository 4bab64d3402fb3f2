"""Composition: the one window processor and what drives it.

- :mod:`hmco.compose.processor` — :class:`WindowProcessor`, the only path a batch takes
  (fetch → archive → parse → transforms → conform → stage → gate → sinks → publish).
- :mod:`hmco.compose.pipeline` — :class:`Pipeline`: windows, backfills, exact resume.
- :mod:`hmco.compose.realtime` — :class:`RealtimeRunner`: ISO cadences, catch-up, lag.
- :mod:`hmco.compose.spec` — the Universal Ingestion Spec (YAML) that builds a pipeline.

Modules are imported on use (the real-time runner loads the ClickHouse client), so this package
re-exports nothing itself; ``hmco.Pipeline``, ``hmco.RealtimeRunner`` and ``hmco.WindowProcessor``
are the public faces.
"""
