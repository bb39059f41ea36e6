"""Robots: the shared types and safety filter (robot.base), the MuJoCo simulation, the WidowX adapter, cameras.

Nothing here imports policy, training or app (see ARCHITECTURE.md)."""
