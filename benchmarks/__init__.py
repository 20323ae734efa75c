"""Benchmarks: ``python -m benchmarks detectors`` compares auditwatch's detectors with peers.

Streams are in ``streams.py``, peer adapters in ``peers.py``, the prequential runner
in ``detectors_bench.py`` and the Markdown report in ``report.py``.
"""
