"""energytui's advisor: a physical model of llama.cpp inference, calibrated on measured trials, that
predicts latency, power and energy and recommends a configuration.

Never imports textual (tests/test_layering.py). Calibration uses scikit-learn; prediction uses the
calibrated constants and any residual trees exported to plain numbers (advisor/portable.py), so
`energytui advise` with a cached calibration imports neither scikit-learn nor numpy.
"""
