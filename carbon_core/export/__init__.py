"""Exporters: the run's figures in the monitoring a cluster already runs.

Opt-in (``export=[...]`` / ``CARBON_EXPORT``): ``prometheus`` (a pull endpoint),
``pushgateway`` (a push each interval and once at stop) and ``otlp`` (OpenTelemetry
metrics: the user's meter provider, else OTLP/HTTP from the ``OTEL_EXPORTER_OTLP_*``
variables). :mod:`names` says which extra each one needs (checked at construction, without
importing it); :mod:`figures` turns the run's intervals into per-device figures;
:mod:`base` holds what every exporter is and the thread that sends for it; :mod:`group`
starts them for one run and keeps a failing one from reaching training.

This package is imported only when an exporter is named: ``import carbon_core`` stays cheap.
"""
