"""energytui's advisor: fits latency, power and energy on measured trials and recommends a configuration.

Never imports textual (tests/test_layering.py). Fitting uses scikit-learn; prediction
uses the fitted models exported to plain numbers (advisor/portable.py), so that
`energytui advise` with a cached fit does not pay for importing scikit-learn.
"""
