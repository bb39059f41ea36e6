"""Dataset formats: one module per format, all yielding `training.formats.episode.Episode`.

    bridge_raw   BridgeData V2 raw folders (reader + writer)
    lerobot      LeRobot v3 datasets (reader + a small writer used for fixtures)
    episode_log  the closed loop's episode logs (policy.episode_log), successful episodes only

Each format module exposes `list_episodes(root, ...) -> list[str]` and
`read_episode(root, ref, ...) -> Episode` (raising `EpisodeError` with a one-line reason).
"""

from training.formats.episode import Episode, EpisodeError, LazyImages

__all__ = ["Episode", "EpisodeError", "LazyImages", "FORMATS", "Reader"]

FORMATS = ("bridge_raw", "lerobot", "episode_log")


class Reader:
    """A dataset opened in one format: `refs()` lists its episodes, `read(ref)` loads one.

    Picklable (only the root and options travel), so worker processes can open their own.
    """

    def __init__(self, fmt: str, root: str, **options) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
        self.fmt, self.root, self.options = fmt, str(root), options

    @property
    def module(self):
        import importlib

        return importlib.import_module(f"training.formats.{self.fmt}")

    def refs(self) -> list[str]:
        return self.module.list_episodes(self.root, **self.options)

    def read(self, ref: str) -> Episode:
        return self.module.read_episode(self.root, ref, **self.options)
