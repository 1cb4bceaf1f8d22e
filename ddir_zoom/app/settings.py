"""What the viewer remembers between runs (QSettings): one place for every key."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings

MAX_RECENT = 10


class _Text:
    """A string setting stored under the attribute's own name, with a default."""

    def __init__(self, default: str) -> None:
        self.default = default

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = name

    def __get__(self, settings: Settings, owner: type | None = None) -> str:
        return str(settings.qsettings.value(self.key, self.default))

    def __set__(self, settings: Settings, value: str) -> None:
        settings.qsettings.setValue(self.key, value)


class Settings:
    last_folder = _Text("")
    layout = _Text("single")
    device = _Text("auto")
    theme = _Text("dark")
    threads = _Text("0")  # CPU threads; 0: the cores not busy with other programs
    precision = _Text("float32")  # decoding: float32 (exact) or bfloat16 (models.precision)

    def __init__(self, settings: QSettings | None = None) -> None:
        self.qsettings = settings or QSettings("ddir-zoom", "ddir-zoom")

    def _list(self, key: str) -> list[str]:
        value = self.qsettings.value(key, [])
        if isinstance(value, str):  # QSettings returns a lone item as a string
            return [value] if value else []
        return [str(v) for v in value or []]

    @property
    def recent(self) -> list[str]:
        return self._list("recent")

    def add_recent(self, path: str) -> None:
        files = [path] + [p for p in self.recent if p != path]
        self.qsettings.setValue("recent", files[:MAX_RECENT])

    def remove_recent(self, path: str) -> None:
        self.qsettings.setValue("recent", [p for p in self.recent if p != path])

    @property
    def methods(self) -> list[str]:
        return self._list("methods") or ["DDIR", "LIIF", "bicubic"]

    @methods.setter
    def methods(self, methods: list[str]) -> None:
        self.qsettings.setValue("methods", list(methods))

    @property
    def models(self) -> list[str]:
        """Model files the user loaded: offered again with every photo."""
        return self._list("models")

    @models.setter
    def models(self, paths: list[str]) -> None:
        self.qsettings.setValue("models", list(paths))

    @property
    def geometry(self) -> QByteArray | None:
        value = self.qsettings.value("geometry")
        return value if isinstance(value, QByteArray) else None

    @geometry.setter
    def geometry(self, value: QByteArray) -> None:
        self.qsettings.setValue("geometry", value)

    def sync(self) -> None:
        self.qsettings.sync()
