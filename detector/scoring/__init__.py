"""Detectors (raw anomaly scores) and calibration (scores -> severity)."""
