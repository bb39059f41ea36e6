"""Dataset formats: one module per format, all yielding `training.formats.episode.Episode`.

    bridge_raw   BridgeData V2 raw folders (reader + writer)
    lerobot      LeRobot v3 datasets (reader + a small writer used for fixtures)

Each format module exposes `list_episodes(root, ...) -> list[str]` and
`read_episode(root, ref, ...) -> Episode` (raising `EpisodeError` with a one-line reason).
"""

from training.formats.episode import Episode, EpisodeError, LazyImages

__all__ = ["Episode", "EpisodeError", "LazyImages", "FORMATS"]

FORMATS = ("bridge_raw", "lerobot")
