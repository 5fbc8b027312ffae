"""The one thing pyproject.toml cannot say: two optional C modules, the greedy decode loop (engine/_greedy_loop.c,
see engine/native_loop.py) and the SIGBUS handler that names a model file cut short (engine/_sigbus.c, see
engine/sigbus.py). Without a C compiler the install goes on; the engine keeps its Python loop, and a model file cut
short mid-trial ends the process as a plain "Bus error"."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("energytui.engine._greedy_loop", ["engine/_greedy_loop.c"], optional=True,
                             extra_compile_args=["-O3"]),
                   Extension("energytui.engine._sigbus", ["engine/_sigbus.c"], optional=True)])
