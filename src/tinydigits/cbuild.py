"""Moved to `tinydigits.targets.host` (the host is one of the targets); kept so existing imports work."""
from .targets.host import compile_host, run_batch  # noqa: F401
