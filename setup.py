"""The one thing pyproject.toml cannot say: the optional C decode loop (engine/_greedy_loop.c, see
engine/native_loop.py). Without a C compiler the install goes on and the engine keeps its Python loop."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("energytui.engine._greedy_loop", ["engine/_greedy_loop.c"], optional=True,
                             extra_compile_args=["-O3"])])
