"""Settings remembered between runs (QSettings) on top of ``humanpose.yml``.

The YAML file gives the defaults; whatever the user changed in the window is stored in QSettings
(an INI file per user: ~/.config/humanpose/humanpose.ini on Linux, %APPDATA%\\humanpose\\humanpose.ini
on Windows; Settings > Forget remembered settings clears it) and applied over
the YAML values at the next start.  Every stored value goes through :func:`config.set_value`, so a
stale or hand-edited entry that is no longer valid is ignored with a warning instead of breaking
the start.
"""
from __future__ import annotations

import logging
import typing

from PySide6.QtCore import QObject, QSettings, Signal

from ..config import Config, ConfigError, set_value
from .options import CONTROLS

log = logging.getLogger(__name__)

ORGANISATION = "humanpose"
APPLICATION = "humanpose"


def _key_type(key: str) -> type:
    section, _, name = key.partition(".")
    return typing.get_type_hints(type(getattr(Config(), section)))[name]


# Config keys the window changes and remembers, with their Python types: every control of the
# table (options.CONTROLS), the source opened last and the view
REMEMBERED: dict[str, type] = {key: _key_type(key) for key in
                               [c.key for c in CONTROLS] + ["source.source", "gui.view"]}


def open_settings(path: str | None = None) -> QSettings:
    """The user's settings, or an INI file at ``path`` (tests, portable installs)."""
    if path:
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION)


def _convert(value, typ: type):
    """QSettings returns strings from INI files; turn them back into ``typ``."""
    if typ is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes"):
            return True
        if str(value).lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return typ(value)


def apply_settings(cfg: Config, settings: QSettings) -> Config:
    """``cfg`` with the remembered values applied (invalid entries are skipped with a warning)."""
    for key, typ in REMEMBERED.items():
        qkey = key.replace(".", "/")
        if not settings.contains(qkey):
            continue
        raw = settings.value(qkey)
        try:
            cfg = set_value(cfg, key, _convert(raw, typ))
        except (ConfigError, ValueError, TypeError) as exc:
            log.warning("ignoring remembered setting %s=%r: %s", key, raw, exc)
    return cfg


def remember(settings: QSettings, key: str, value) -> None:
    """Store one config value (``key`` as in :data:`REMEMBERED`)."""
    if key not in REMEMBERED:
        raise KeyError(f"{key} is not a remembered setting; known: {', '.join(REMEMBERED)}")
    settings.setValue(key.replace(".", "/"), value)


class ConfigStore(QObject):
    """The window's config: :attr:`cfg`, changed by :meth:`set` (validated, remembered in
    ``settings`` when the key is one of :data:`REMEMBERED`; ``changed(key)`` says so)."""

    changed = Signal(str)

    def __init__(self, cfg: Config, settings: QSettings | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.settings = settings

    def set(self, key: str, value) -> None:
        self.cfg = set_value(self.cfg, key, value)
        if self.settings is not None and key in REMEMBERED:
            remember(self.settings, key, value)
        self.changed.emit(key)

    def forget(self) -> None:
        """Forget every remembered setting (humanpose.yml applies at the next start)."""
        if self.settings is not None:
            self.settings.clear()
            self.settings.sync()
