"""Settings: the schema (`schema`), loading with env overrides (`loader`), secrets."""

from config.loader import ConfigError, Problem, load_settings
from config.schema import Settings

__all__ = ["ConfigError", "Problem", "Settings", "load_settings"]
