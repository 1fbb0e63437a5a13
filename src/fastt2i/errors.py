"""User-facing errors: the CLI prints these as one line (`error: ...`) instead of a traceback."""


class Fastt2iError(Exception):
    """Base class for errors caused by bad input, configs, paths or missing assets."""


class ConfigError(Fastt2iError, ValueError):
    """A config value or override that cannot be applied (bad key, bad type)."""


class DataError(Fastt2iError):
    """A dataset that cannot be read (bad path, unknown layout, missing columns)."""


class AssetNotFoundError(Fastt2iError):
    """A pretrained model or weights file that is neither on disk nor reachable offline."""
