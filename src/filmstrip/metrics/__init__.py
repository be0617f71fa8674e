"""Prometheus metrics: one module per concept, objects on the process's default registry.

Roles import the objects they record (``filmstrip.metrics.http``, ``.jobs``, ``.bus``,
``.queue``) and serve them with :mod:`filmstrip.metrics.exposition`. The per-stage
timings the dashboard charts live in Redis instead (:mod:`filmstrip.metrics.stage_stats`),
because the dashboard reads every worker at once and Prometheus may not be deployed.
"""
