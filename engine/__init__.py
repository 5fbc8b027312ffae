"""energytui's engine: manifests, models, the llama.cpp runner, the SQLite store and the trial queue.

Never imports textual (tests/test_layering.py checks it): the CLI, the TUI and
the advisor all reach the engine through these modules' public functions.
"""
