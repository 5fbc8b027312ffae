"""Fakes and stand-ins for hardware interfaces, used by the tests only (never real drivers)."""
