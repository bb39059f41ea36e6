"""`SimRobot`: the MuJoCo WidowX as a `robot.base.Robot`.

Control is what the real arm gets in BridgeData V2: 5 Hz end-effector steps
[dx, dy, dz, gripper] in the base frame with the gripper pointing down. Each step
passes the safety filter, becomes joint targets by damped-least-squares IK on MuJoCo
Jacobians, and the position servos track a linear ramp to them over the 0.2 s step.

Grasp assist: MuJoCo's soft contacts let a light object creep out of two position-
controlled fingers within a few seconds. So, while the gripper is commanded closed and
*both* finger pads touch one object, a weld between the gripper and that object is
switched on (at the relative pose they have at that moment, so nothing jumps); it is
switched off the moment the gripper is commanded open, and the object falls. Objects
the fingers do not pinch are never welded. `SimConfig.grasp_assist=False` turns it off.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import numpy as np

from . import _gl  # noqa: F401  (chooses MUJOCO_GL before mujoco is imported)
import mujoco

from ..base import FilteredCommand, Observation, SafetyConfig, SafetyFilter
from .layout import LAYOUTS, PICKABLE_REGION, Placement
from .scene import ARM_JOINTS, FINGER_RANGE, OBJECTS, PAD_TIP, PICKABLES, build_mjcf

def _fmt_cm(p: np.ndarray) -> str:
    return "(" + ", ".join(f"{x * 100:+.1f}" for x in p) + ") cm"


# Setting down what the hand holds before the next episode (see next_episode_plan)
CARRY_Z = 0.13  # travel height with an object, as the expert's (its bottom clears the pot walls)
SAFE_Z = 0.09  # rise to this before travelling home empty-handed
GRASP_Z_MIN = PAD_TIP + 0.004  # lowest hand height: finger tips 4 mm above the table
SET_DOWN_GAP = 0.008  # let go this far above resting height
SET_DOWN_MARGIN = 0.03  # clearance to other objects' footprints (footprints understate the banana's arc)
LAYOUT_TRIES = 50  # draws of a seed's layout until the objects settle where they were placed
SETTLE_TOL = 0.01  # metres an object may move while settling; more means it was pushed by an overlap


# Gripper pointing down: tool x-axis along -z, fingers closing along the base y-axis.
R_DOWN = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])


@dataclass
class SimConfig:
    """Everything about the simulated arm a user may want to change."""

    image_size: int = 256  # square RGB images, as Bridge's 256x256 image_0
    wrist_camera: bool = False  # also render the wrist view into Observation.wrist_image
    control_hz: float = 5.0  # one move() = 1 / control_hz seconds of physics
    home: tuple[float, float, float] = (0.25, 0.0, 0.16)  # metres; inside the Bridge workspace box
    grasp_assist: bool = True
    # Shadow mapping costs ~4x the render time on a CPU rasterizer (llvmpipe); off by default
    # so a control step with its 256x256 frame stays well above 20 Hz on one core.
    shadows: bool = False
    settle_s: float = 0.3  # physics run after placing objects so they come to rest
    ik_iters: int = 60
    ik_damping: float = 0.02
    safety: SafetyConfig = field(default_factory=SafetyConfig)

    def __post_init__(self) -> None:
        if self.image_size < 16:
            raise ValueError(f"SimConfig.image_size must be at least 16 pixels, got {self.image_size}")
        if not self.control_hz > 0:
            raise ValueError(f"SimConfig.control_hz must be positive, got {self.control_hz}")
        if not self.safety.workspace.contains(np.asarray(self.home)):
            raise ValueError(f"SimConfig.home {self.home} must lie inside the safety workspace box")


@dataclass(frozen=True)
class StepRecord:
    """What the simulator looked like after one move(): for success checks over time."""

    time: float
    ee_pos: np.ndarray
    gripper_cmd: float
    held: str | None
    positions: dict[str, np.ndarray]


class SimRobot:
    """The simulated WidowX 250S in the toy kitchen. See the module docstring."""

    def __init__(self, config: SimConfig | None = None, seed: int = 0, task=None) -> None:
        self.config = config or SimConfig()
        self.safety = SafetyFilter(self.config.safety)
        xml, assets = build_mjcf()
        self.model = mujoco.MjModel.from_xml_string(xml, assets)
        self.model.light_castshadow[:] = int(self.config.shadows)
        self.data = mujoco.MjData(self.model)
        self._ik_data = mujoco.MjData(self.model)
        m = self.model
        self._arm_qadr = np.array([m.joint(j).qposadr[0] for j in ARM_JOINTS])
        self._arm_dadr = np.array([m.joint(j).dofadr[0] for j in ARM_JOINTS])
        self._arm_lo = m.jnt_range[[m.joint(j).id for j in ARM_JOINTS], 0]
        self._arm_hi = m.jnt_range[[m.joint(j).id for j in ARM_JOINTS], 1]
        self._finger_qadr = np.array([m.joint(f).qposadr[0] for f in ("left_finger", "right_finger")])
        self._ee = m.site("ee").id
        self._gripper_body = m.body("gripper_link").id
        self._pad_geoms = (m.geom("left_pad").id, m.geom("right_pad").id)
        self._body_of_geom = m.geom_bodyid.copy()
        self._obj_body = {n: m.body(n).id for n in OBJECTS}
        self._free_qadr = {n: m.joint(n).qposadr[0] for n in PICKABLES}
        self._weld = {n: m.equality(f"grasp_{n}").id for n in PICKABLES}
        self._eq_data0 = m.eq_data.copy()
        self._body_pos0 = m.body_pos.copy()
        self._substeps = int(round(1.0 / (self.config.control_hz * m.opt.timestep)))
        self._renderer = None
        self._connected = False
        self.held: str | None = None
        self.task = None
        self.seed = seed
        self.history: list[StepRecord] = []
        self._home_q = self._solve_home()
        self.reset(seed, task)

    # ------------------------------------------------------------------ Robot protocol
    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._connected = False

    def observe(self) -> Observation:
        image = self.render("scene")
        wrist = self.render("wrist") if self.config.wrist_camera else None
        return Observation(image=image, ee_pos=self.ee_pos(), gripper=self.gripper_opening(), timestamp=float(self.data.time), wrist_image=wrist)

    def move(self, delta: np.ndarray, gripper: float | None = None) -> FilteredCommand:
        """One 5 Hz step from where the arm *is* (see `SafetyFilter.filter`'s `measured`), watched as it moves.

        The joint path is checked by forward kinematics before it runs (a solution on another IK
        branch would swing the hand through space in between); the measured hand is checked after
        every 1/10 of the step, and an excursion (`SafetyFilter.watch`) or a `stop()` from another
        thread holds the joints where they are and raises `EStopEngaged` with the reason.
        """
        before = self.ee_pos()
        cmd = self.safety.filter(self._target, delta, gripper, measured=before)
        if cmd.gripper is not None:
            self._grip_cmd = float(cmd.gripper)
        q_now = self.data.qpos[self._arm_qadr].copy()
        resynced = not np.array_equal(cmd.start, self._target)
        q0 = q_now if resynced else self._q_target  # in sync: ramp on from the last goal
        path, note = self._joint_path(q0, before, cmd.target)
        if note:
            cmd = dataclasses.replace(cmd, reasons=cmd.reasons + (note,))
        self._run(path, watch_from=before)
        self._target = cmd.target  # an unreached target is caught by the filter's re-sync next step
        self._record()
        self.safety.check()  # an excursion or a stop() during the step: the joints hold, say why
        return cmd

    def home(self) -> None:
        """Drive the joints to the home pose over one second (a joint move, like the real arm)."""
        self.safety.check()
        self._ramp_to(self._home_q, duration=1.0)
        self._target = np.asarray(self.config.home, float).copy()
        self._record()

    def stop(self) -> None:
        """Engage the e-stop latch and hold the joints where they are.

        Safe from any thread while another is inside `move()`: the step in progress sees the latch
        before its next 1/50 s of physics and holds too."""
        self.safety.estop("stop() called on the simulated arm")
        self._hold()

    def _hold(self) -> None:
        q = self.data.qpos[self._arm_qadr].copy()
        self._q_target = q
        self.data.ctrl[:6] = q

    # ------------------------------------------------------------------ episodes
    def reset(self, seed: int | None = None, task=None) -> None:
        """Start a new episode: re-place the objects from `seed`, home the arm, clear the e-stop.

        `task` is a Task, a task name (its parameters then come from `seed`) or None
        (keep the current task; the free layout when there is none). The same seed and
        task give the same episode, bit for bit.
        """
        from .tasks import Task, make_task  # tasks imports this module

        if seed is None:
            seed = self.seed
        self.seed = int(seed)
        if isinstance(task, str):
            task = make_task(task, seed=self.seed)
        if task is not None:
            if not isinstance(task, Task):
                raise TypeError(f"task must be a Task or a task name, got {type(task).__name__}")
            self.task = task
        d = self.data
        self.held = None
        self.safety.reset()
        rng = np.random.default_rng(self.seed)
        arrange = LAYOUTS[self.task.layout if self.task is not None else "free"]
        for _ in range(LAYOUT_TRIES):
            layout = arrange(rng)
            if self._set_table(layout):
                break
        else:
            raise RuntimeError(f"seed {self.seed}: no layout in {LAYOUT_TRIES} draws settled without objects pushing each other; "
                               "check the footprints in robot/sim/scene.py")
        d.time = 0.0
        self._target = np.asarray(self.config.home, float).copy()
        self.initial_positions = self.object_positions()
        self.history = []
        self._record()

    # ------------------------------------------------------------------ episodes in a row
    def next_episode_plan(self) -> tuple[np.ndarray, np.ndarray, str]:
        """The moves that make the table as it is a state an episode can start from, without re-arranging it.

        Returns (deltas (T, 3) metres, gripper targets (T,), a line saying what they do). A held object
        is carried to where it lay when the last episode began (or the nearest free spot on the table),
        lowered until it nearly touches, and let go; an empty closed gripper opens; then the hand rises
        and travels home. Run the moves through `move()` (paced, filtered), then `begin_episode()`.
        """
        pos = self.target
        deltas: list[np.ndarray] = []
        grips: list[float] = []
        said: list[str] = []

        def go(to, grip: float, step: float = 0.025) -> None:
            nonlocal pos
            d = np.asarray(to, float) - pos
            n = int(np.ceil(float(np.linalg.norm(d)) / step - 1e-9))
            for _ in range(n):
                deltas.append(d / n)
                grips.append(grip)
            pos = np.asarray(to, float)

        def wait(k: int, grip: float) -> None:
            deltas.extend([np.zeros(3)] * k)
            grips.extend([grip] * k)

        held = self.held or self._pinched()
        if held is not None and self._grip_cmd < 0.5:
            spot = self._free_spot(held)
            carry = max(float(pos[2]), CARRY_Z)
            go((pos[0], pos[1], carry), 0.0)
            go((spot[0], spot[1], carry), 0.0)
            above = float(pos[2]) - float(self.object_positions()[held][2])  # the hand's height above the object's centre
            low = max(OBJECTS[held].rest_z + SET_DOWN_GAP + above, GRASP_Z_MIN)
            go((spot[0], spot[1], low), 0.0, step=0.015)
            wait(2, 1.0)
            said.append(f"set the {held} down at ({spot[0] * 100:.1f}, {spot[1] * 100:.1f}) cm")
        elif self._grip_cmd < 0.5:
            wait(2, 1.0)
            said.append("opened the gripper")
        home = np.asarray(self.config.home, float)
        if np.linalg.norm(pos - home) > 0.005:
            if pos[2] < SAFE_Z:
                go((pos[0], pos[1], SAFE_Z), 1.0)
            go(home, 1.0)
            said.append("went home")
        return np.array(deltas).reshape(-1, 3), np.array(grips, float), ", ".join(said) or "already home"

    def begin_episode(self) -> None:
        """Start an episode on the table as it is: joints exactly home, e-stop clear, the step history
        and the objects' starting positions (what "the item above the flag" refers to) taken afresh."""
        self.safety.reset()
        self._ramp_to(self._home_q, duration=0.4)
        self._target = np.asarray(self.config.home, float).copy()
        self.initial_positions = self.object_positions()
        self.history = []
        self._record()

    def _pinched(self) -> str | None:
        if self._grip_cmd >= 0.5:
            return None
        for name in PICKABLES:
            if all(self.touching(name)):
                return name
        return None

    def _free_spot(self, obj: str) -> np.ndarray:
        """Where to set `obj` down: where it lay when this episode began if that is still free, else the
        free point of the pickables' region nearest to it (clear of every other object by a margin)."""
        here = self.object_positions()
        others = [(p[:2], OBJECTS[n].radius) for n, p in here.items() if n != obj and OBJECTS[n].kind != "card"]
        need = OBJECTS[obj].radius + SET_DOWN_MARGIN

        def free(xy) -> bool:
            return all(np.hypot(*(xy - p)) >= need + r for p, r in others)

        start = np.asarray(self.initial_positions[obj][:2], float)
        if free(start):
            return start
        x0, x1, y0, y1 = PICKABLE_REGION
        grid = [np.array([x, y]) for x in np.arange(x0, x1 + 1e-9, 0.01) for y in np.arange(y0, y1 + 1e-9, 0.01)]
        grid.sort(key=lambda xy: float(np.hypot(*(xy - start))))
        for xy in grid:
            if free(xy):
                return xy
        return start  # a crowded table: back where it was

    def _set_table(self, layout: dict[str, Placement]) -> bool:
        """Place everything, home the arm, let the objects settle; False when one did not stay put.

        Footprints are circles (`ObjectSpec.radius`), but the banana's arc reaches 6.2 cm from its
        centre and the pot's walls stand 5 cm high: in about one free layout in eleven (28 of seeds 0-299) two shapes
        overlap, and the contact throws an object aside (seed 14 threw the banana 32 cm, off the table).
        Such a layout is drawn again from the same generator, so a seed still fixes the scene."""
        m, d = self.model, self.data
        m.eq_data[:] = self._eq_data0
        m.body_pos[:] = self._body_pos0
        mujoco.mj_resetData(m, d)
        d.eq_active[:] = 0
        self._apply_layout(layout)
        d.qpos[self._arm_qadr] = self._home_q
        d.qpos[self._finger_qadr] = FINGER_RANGE[1]
        self._q_target = self._home_q.copy()
        self._grip_cmd = 1.0
        self._set_ctrl(self._q_target)
        mujoco.mj_forward(m, d)
        n = int(round(self.config.settle_s / m.opt.timestep))
        mujoco.mj_step(m, d, nstep=n)
        for name in PICKABLES:
            if name in layout:
                p, want = d.xpos[self._obj_body[name]], layout[name]
                if np.hypot(p[0] - want.x, p[1] - want.y) > SETTLE_TOL or p[2] > OBJECTS[name].rest_z + SETTLE_TOL:
                    return False
        return True

    def _apply_layout(self, layout: dict[str, Placement]) -> None:
        m, d = self.model, self.data
        for name, p in layout.items():
            spec = OBJECTS[name]
            quat = np.array([np.cos(p.yaw / 2), 0.0, 0.0, np.sin(p.yaw / 2)])
            if name in PICKABLES:
                a = self._free_qadr[name]
                d.qpos[a : a + 3] = (p.x, p.y, spec.rest_z + 0.001)
                d.qpos[a + 3 : a + 7] = quat
            else:  # static scenery moves through the model
                b = self._obj_body[name]
                m.body_pos[b] = (p.x, p.y, spec.rest_z)
                m.body_quat[b] = quat

    def set_task(self, task) -> None:
        """Judge and plan for `task` on the table as it is (no reset): the task must share its layout."""
        if self.task is not None and task.layout != self.task.layout:
            raise ValueError(f"task {task!r} needs the {task.layout!r} layout; reset(seed, task=...) re-arranges the table")
        self.task = task

    # ------------------------------------------------------------------ state
    def ee_pos(self) -> np.ndarray:
        return self.data.site_xpos[self._ee].copy()

    def ee_rpy(self) -> np.ndarray:
        """End-effector roll, pitch, yaw (radians, extrinsic xyz) relative to gripper-down.

        As Bridge's WidowX controller reports them: the orientation times the inverse of
        the default (gripper-down) rotation, so pointing straight down reads (0, 0, 0)
        and the Euler angles stay far from gimbal lock.
        """
        R = self.data.site_xmat[self._ee].reshape(3, 3) @ R_DOWN.T
        pitch = float(np.arcsin(-np.clip(R[2, 0], -1.0, 1.0)))
        roll = float(np.arctan2(R[2, 1], R[2, 2]))
        yaw = float(np.arctan2(R[1, 0], R[0, 0]))
        return np.array([roll, pitch, yaw])

    def gripper_opening(self) -> float:
        """Measured finger opening in [0, 1] (1 = open)."""
        q = float(np.mean(self.data.qpos[self._finger_qadr]))
        return float(np.clip((q - FINGER_RANGE[0]) / (FINGER_RANGE[1] - FINGER_RANGE[0]), 0.0, 1.0))

    def state(self) -> np.ndarray:
        """Bridge's 7-D state: [x, y, z, roll, pitch, yaw, gripper]."""
        return np.concatenate([self.ee_pos(), self.ee_rpy(), [self.gripper_opening()]])

    @property
    def gripper_command(self) -> float:
        return self._grip_cmd

    @property
    def target(self) -> np.ndarray:
        """The commanded end-effector position (where the next delta starts from)."""
        return self._target.copy()

    def object_positions(self) -> dict[str, np.ndarray]:
        """Every object's position (metres, base frame): pickables, containers and cards."""
        return {n: self.data.xpos[b].copy() for n, b in self._obj_body.items()}

    def object_velocity(self, name: str) -> float:
        """Linear speed of a pickable object, m/s."""
        a = self.model.joint(name).dofadr[0]
        return float(np.linalg.norm(self.data.qvel[a : a + 3]))

    def touching(self, name: str) -> tuple[bool, bool]:
        """Whether the (left, right) finger pads touch object `name`."""
        body = self._obj_body[name]
        left = right = False
        for c in self.data.contact[: self.data.ncon]:
            g1, g2 = c.geom1, c.geom2
            for pad, other in ((g1, g2), (g2, g1)):
                if self._body_of_geom[other] == body:
                    if pad == self._pad_geoms[0]:
                        left = True
                    elif pad == self._pad_geoms[1]:
                        right = True
        return left, right

    # ------------------------------------------------------------------ rendering
    def render(self, camera: str = "scene") -> np.ndarray:
        if self._renderer is None:
            if _gl.BACKEND == "disabled":
                raise _gl.RenderBackendError(_gl.render_failure())
            size = self.config.image_size
            try:
                self._renderer = mujoco.Renderer(self.model, size, size)
            except Exception as e:  # mujoco raises FatalError/RuntimeError/ValueError by backend
                raise _gl.RenderBackendError(
                    f"cannot render offscreen with MUJOCO_GL={os.environ.get('MUJOCO_GL', '(unset)')}: {e}. "
                    "Set MUJOCO_GL=egl (or osmesa) before anything imports mujoco, or import robot.sim first"
                ) from None
        self._renderer.update_scene(self.data, camera=camera)
        return self._renderer.render().copy()

    # ------------------------------------------------------------------ control internals
    def _set_ctrl(self, q: np.ndarray) -> None:
        self.data.ctrl[:6] = q
        f = FINGER_RANGE[0] + self._grip_cmd * (FINGER_RANGE[1] - FINGER_RANGE[0])
        self.data.ctrl[6:8] = f

    CHUNKS = 10  # a step's joint targets change 10 times (every 1/50 s at 5 Hz)

    def _run(self, path: np.ndarray, watch_from: np.ndarray | None = None) -> None:
        """One control period: the joint targets follow `path` ((CHUNKS, 6), reached at 80 % of the
        period, then held) while the physics runs; the grasp assist is updated as it goes.

        With `watch_from` (the hand's measured position when the step began) the measured hand is
        checked after every chunk; an excursion or a latched e-stop holds the joints and ends the step.
        """
        m, d = self.model, self.data
        if self._grip_cmd >= 0.5 and self.held is not None:
            self._release()
        per = self._substeps // self.CHUNKS
        for k in range(self.CHUNKS):
            self._set_ctrl(path[min(k, len(path) - 1)])
            if self.safety.engaged:
                self._hold()
                return
            mujoco.mj_step(m, d, nstep=per)
            if self.config.grasp_assist and self.held is None and self._grip_cmd < 0.5:
                self._try_grasp()
            if watch_from is not None and self.safety.watch(watch_from, self.ee_pos()) is not None:
                self._hold()
                return
        rest = self._substeps - per * self.CHUNKS
        if rest:
            mujoco.mj_step(m, d, nstep=rest)
        if watch_from is not None:
            self.safety.watch(watch_from, self.ee_pos())
        if self.safety.engaged:
            self._hold()
            return
        self._q_target = path[-1].copy()

    def _joint_path(self, q0: np.ndarray, start: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, str]:
        """Joint targets for one step from `start` (measured) to `target`: ((8, 6) array, note).

        First the joint-space ramp to one IK solution. If forward kinematics shows that ramp leaving
        the box or straying beyond the step limit from `start` (another IK branch, a joint limit), the
        hand follows the straight line instead, one IK solution per waypoint, each from the last, and
        stops at the last waypoint it reaches safely; the note then says so."""
        n = int(np.ceil(0.8 * self.CHUNKS))
        q_goal, err = self._ik(target, q0)
        ramp = q0 + np.linspace(1.0 / n, 1.0, n)[:, None] * (q_goal - q0)[None]
        if err < 0.005 and self._path_ok(start, [self._fk(q) for q in ramp]):
            return ramp, ""
        path, q, reached = [], q0, 0
        for s in np.linspace(1.0 / n, 1.0, n):
            w = start + s * (target - start)
            qw, e = self._ik(w, q)
            if e > 0.005 or not self._path_ok(start, [self._fk(q + t * (qw - q)) for t in (0.5, 1.0)]):
                break
            path.append(qw)
            q, reached = qw, s
        path += [q] * (n - len(path))
        if reached >= 1.0:
            return np.array(path), ""
        where = start + reached * (target - start)
        return np.array(path), (f"target {_fmt_cm(target)} not reachable safely with the gripper down; "
                                f"the hand stopped at {_fmt_cm(where)}")

    def _path_ok(self, start: np.ndarray, points) -> bool:
        cfg = self.safety.config
        ws = cfg.workspace
        out0 = float(np.linalg.norm(start - ws.clip(start)))
        return all(
            float(np.linalg.norm(p - start)) <= cfg.max_step + 0.002
            and float(np.linalg.norm(p - ws.clip(p))) <= out0 + 0.002
            for p in points
        )

    def _ramp_to(self, q_goal: np.ndarray, duration: float) -> None:
        steps = max(1, int(round(duration * self.config.control_hz)))
        q0 = self._q_target.copy()
        n = int(np.ceil(0.8 * self.CHUNKS))
        for i in range(steps):
            a, b = q0 + i / steps * (q_goal - q0), q0 + (i + 1) / steps * (q_goal - q0)
            self._run(a + np.linspace(1.0 / n, 1.0, n)[:, None] * (b - a)[None])

    def _try_grasp(self) -> None:
        for name in PICKABLES:
            left, right = self.touching(name)
            if left and right:
                self._weld_on(name)
                return

    def _weld_on(self, name: str) -> None:
        m, d = self.model, self.data
        eq = self._weld[name]
        g, o = self._gripper_body, self._obj_body[name]
        # relpose = pose of the object in the gripper frame now, so the weld holds it where it is.
        rg = d.xmat[g].reshape(3, 3)
        relpos = rg.T @ (d.xpos[o] - d.xpos[g])
        qg_inv = np.zeros(4)
        mujoco.mju_negQuat(qg_inv, d.xquat[g])
        relquat = np.zeros(4)
        mujoco.mju_mulQuat(relquat, qg_inv, d.xquat[o])
        m.eq_data[eq, 0:3] = 0.0  # anchor at body2's origin
        m.eq_data[eq, 3:6] = relpos
        m.eq_data[eq, 6:10] = relquat
        d.eq_active[eq] = 1
        self.held = name

    def _release(self) -> None:
        self.data.eq_active[self._weld[self.held]] = 0
        self.held = None

    def _record(self) -> None:
        self.history.append(
            StepRecord(
                time=float(self.data.time),
                ee_pos=self.ee_pos(),
                gripper_cmd=self._grip_cmd,
                held=self.held,
                positions={n: self.data.xpos[self._obj_body[n]].copy() for n in PICKABLES},
            )
        )

    # ------------------------------------------------------------------ kinematics
    def _fk(self, q: np.ndarray) -> np.ndarray:
        d = self._ik_data
        d.qpos[self._arm_qadr] = q
        mujoco.mj_kinematics(self.model, d)
        return d.site_xpos[self._ee].copy()

    def _ik(self, target: np.ndarray, q_init: np.ndarray) -> tuple[np.ndarray, float]:
        """Damped least squares on the ee site Jacobian: position + gripper-down orientation.

        Returns the joint solution and its remaining position error (metres).
        """
        m, d = self.model, self._ik_data
        q = q_init.copy()
        jacp = np.zeros((3, m.nv))
        jacr = np.zeros((3, m.nv))
        lam2 = self.config.ik_damping**2
        err_p = np.inf
        for _ in range(self.config.ik_iters):
            d.qpos[self._arm_qadr] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            R = d.site_xmat[self._ee].reshape(3, 3)
            e_p = target - d.site_xpos[self._ee]
            # orientation error: half the sum of column cross products (small-angle axis-angle)
            e_r = 0.5 * sum(np.cross(R[:, i], R_DOWN[:, i]) for i in range(3))
            err_p = float(np.linalg.norm(e_p))
            if err_p < 2e-4 and float(np.linalg.norm(e_r)) < 2e-3:
                break
            mujoco.mj_jacSite(m, d, jacp, jacr, self._ee)
            J = np.vstack([jacp[:, self._arm_dadr], 0.3 * jacr[:, self._arm_dadr]])
            e = np.concatenate([e_p, 0.3 * e_r])
            dq = J.T @ np.linalg.solve(J @ J.T + lam2 * np.eye(6), e)
            n = float(np.max(np.abs(dq)))
            if n > 0.3:  # keep each iteration in the linear regime
                dq *= 0.3 / n
            q = np.clip(q + dq, self._arm_lo, self._arm_hi)
        return q, err_p

    def _solve_home(self) -> np.ndarray:
        # An elbow-up seed: shoulder back, elbow bent up, wrist pitched down.
        seed = np.array([0.0, -0.4, 0.3, 0.0, 1.6, 0.0])
        q, err = self._ik(np.asarray(self.config.home, float), seed)
        if err > 1e-3:
            raise ValueError(f"SimConfig.home {self.config.home} is not reachable with the gripper pointing down")
        return q

    def __repr__(self) -> str:
        return f"SimRobot(seed={self.seed}, task={self.task!r})"
