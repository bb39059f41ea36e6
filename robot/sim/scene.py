"""The MuJoCo model: a WidowX-250S-like arm on a toy-kitchen table, built as MJCF text.

Arm kinematics follow the published Interbotix wx250s description (metres, radians):
waist axis at z 0.072; shoulder 0.03865 above it; elbow at (0.04975, 0, 0.25) from the
shoulder; forearm roll 0.175 further along x; wrist angle 0.075; wrist rotate 0.065;
the end-effector point ("ee" site, ee_gripper_link) 0.093575 beyond the wrist rotate
axis, which puts it at (0.458, 0, 0.361) with every joint at zero. Links are primitive
geoms; only the fingers collide (the arm never reaches into the scene with its
forearm in these tasks, and skipping those contacts keeps the physics fast).

The table top is the plane z = 0 of the base frame, as on the Bridge tabletop setups.
Flag cards are drawn procedurally (numpy) and handed to MuJoCo as PNG assets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# --------------------------------------------------------------------------- kinematics

WAIST_Z = 0.072
SHOULDER_Z = 0.03865
ELBOW = (0.04975, 0.0, 0.25)
FOREARM_ROLL_X = 0.175
WRIST_ANGLE_X = 0.075
WRIST_ROTATE_X = 0.065
EE_X = 0.093575  # wrist rotate axis -> ee_gripper_link
FINGER_RANGE = (0.015, 0.037)  # finger joint travel, metres
PAD_TIP = 0.01  # finger tips reach this far beyond the ee point along the tool axis
PAD_INSET = 0.011  # inner pad face sits this far inside the finger joint value: gap = 2 * (q - inset)

ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
JOINT_LIMITS_DEG = {
    "waist": (-180, 180),
    "shoulder": (-108, 114),
    "elbow": (-123, 92),
    "forearm_roll": (-180, 180),
    "wrist_angle": (-100, 123),
    "wrist_rotate": (-180, 180),
}
# Position servo gains (N·m/rad); gravity is compensated per body (gravcomp) so they
# only have to fight inertia, as the Dynamixel position loops effectively do.
JOINT_KP = {"waist": 300, "shoulder": 600, "elbow": 400, "forearm_roll": 100, "wrist_angle": 150, "wrist_rotate": 60}

# --------------------------------------------------------------------------- objects


@dataclass(frozen=True)
class ObjectSpec:
    name: str
    kind: str  # "pickable" (free body) | "container" (static, things go on/in it) | "card" (static, flat)
    radius: float  # footprint radius for placement, metres
    rest_z: float  # height of the body origin when resting on the table
    top_z: float = 0.0  # for containers: height things rest at when placed on/in it
    inner_radius: float = 0.0  # for containers: how far from the centre counts as "on/in"


PICKABLES = ("carrot", "eggplant", "banana")
CONTAINERS = ("plate", "pot", "towel")
FLAGS = ("japan", "italy", "brazil")

OBJECTS: dict[str, ObjectSpec] = {
    "carrot": ObjectSpec("carrot", "pickable", 0.045, 0.013),
    "eggplant": ObjectSpec("eggplant", "pickable", 0.045, 0.016),
    "banana": ObjectSpec("banana", "pickable", 0.045, 0.012),
    "plate": ObjectSpec("plate", "container", 0.078, 0.0, top_z=0.008, inner_radius=0.06),
    "pot": ObjectSpec("pot", "container", 0.075, 0.0, top_z=0.006, inner_radius=0.05),
    "towel": ObjectSpec("towel", "container", 0.075, 0.0, top_z=0.004, inner_radius=0.055),
    "japan": ObjectSpec("japan", "card", 0.045, 0.0),
    "italy": ObjectSpec("italy", "card", 0.045, 0.0),
    "brazil": ObjectSpec("brazil", "card", 0.045, 0.0),
}
POT_WALL_HEIGHT = 0.05
CARD_HALF = (0.03, 0.045)  # card half extents (x, y): the flag is drawn landscape across the table


# --------------------------------------------------------------------------- flags


def draw_flag(name: str, height: int = 96, width: int = 144) -> np.ndarray:
    """A national flag as an (H, W, 3) uint8 RGB image, drawn from its geometry."""
    img = np.zeros((height, width, 3), np.uint8)
    yy, xx = np.mgrid[0:height, 0:width].astype(float)
    if name == "japan":
        img[:] = (255, 255, 255)
        r = 0.3 * height
        img[(xx - width / 2) ** 2 + (yy - height / 2) ** 2 <= r * r] = (188, 0, 45)
    elif name == "italy":
        img[:, : width // 3] = (0, 146, 70)
        img[:, width // 3 : 2 * width // 3] = (241, 242, 241)
        img[:, 2 * width // 3 :] = (206, 43, 55)
    elif name == "brazil":
        img[:] = (0, 151, 57)
        # yellow rhombus with a margin of 1/10 of the width/height
        cx, cy = width / 2, height / 2
        ax, ay = width / 2 - width * 0.085, height / 2 - height * 0.12
        img[np.abs(xx - cx) / ax + np.abs(yy - cy) / ay <= 1] = (254, 221, 0)
        r = 0.25 * height
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = (1, 33, 105)
        # the white band across the globe
        band = np.abs(np.hypot(xx - cx + 0.6 * height, yy - cy - 1.2 * height) - 1.28 * height) <= 0.03 * height
        img[band & ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r)] = (255, 255, 255)
    else:
        raise ValueError(f"unknown flag {name!r}; choose one of {', '.join(FLAGS)}")
    # a white card border so the card reads as a printed card on the table
    b = max(2, height // 24)
    img[:b], img[-b:], img[:, :b], img[:, -b:] = 250, 250, 250, 250
    return img


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


# --------------------------------------------------------------------------- MJCF


def _lookat_xyaxes(pos: np.ndarray, target: np.ndarray) -> str:
    f = target - pos
    f /= np.linalg.norm(f)
    x = np.cross(f, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(x, f)
    return " ".join(f"{v:.6f}" for v in (*x, *y))


# Camera like Bridge's image_0: over the robot's shoulder, behind and to the side of
# the base, looking down at the workspace.
SCENE_CAMERA_POS = np.array([-0.22, -0.28, 0.62])
SCENE_CAMERA_TARGET = np.array([0.31, 0.07, 0.0])


def _arm_xml() -> str:
    lim = {k: f'{math.radians(lo):.6f} {math.radians(hi):.6f}' for k, (lo, hi) in JOINT_LIMITS_DEG.items()}
    ex, ey, ez = ELBOW
    f0, f1 = FINGER_RANGE
    pad_x = EE_X - 0.066 + PAD_TIP - 0.019  # pads end PAD_TIP beyond the ee point
    return f"""
    <body name="base_link" pos="0 0 0">
      <geom class="vis" type="box" size="0.07 0.07 0.018" pos="0 0 0.018" material="arm_dark"/>
      <geom class="vis" type="cylinder" size="0.045 0.02" pos="0 0 0.052" material="arm_dark"/>
      <body name="shoulder_link" pos="0 0 {WAIST_Z}" gravcomp="1">
        <inertial pos="0 0 0.02" mass="0.5" diaginertia="0.001 0.001 0.001"/>
        <joint name="waist" axis="0 0 1" range="{lim['waist']}"/>
        <geom class="vis" type="cylinder" size="0.04 0.02" pos="0 0 0.018" material="arm_dark"/>
        <body name="upper_arm_link" pos="0 0 {SHOULDER_Z}" gravcomp="1">
          <inertial pos="0.02 0 0.12" mass="0.4" diaginertia="0.003 0.003 0.0005"/>
          <joint name="shoulder" axis="0 1 0" range="{lim['shoulder']}"/>
          <geom class="vis" type="cylinder" size="0.028 0.03" euler="1.5708 0 0" material="arm_dark"/>
          <geom class="vis" type="capsule" fromto="0 0 0 {ex} 0 {ez}" size="0.022" material="arm_light"/>
          <body name="upper_forearm_link" pos="{ex} {ey} {ez}" gravcomp="1">
            <inertial pos="0.08 0 0" mass="0.3" diaginertia="0.0003 0.002 0.002"/>
            <joint name="elbow" axis="0 1 0" range="{lim['elbow']}"/>
            <geom class="vis" type="cylinder" size="0.026 0.028" euler="1.5708 0 0" material="arm_dark"/>
            <geom class="vis" type="capsule" fromto="0 0 0 {FOREARM_ROLL_X} 0 0" size="0.02" material="arm_light"/>
            <body name="lower_forearm_link" pos="{FOREARM_ROLL_X} 0 0" gravcomp="1">
              <inertial pos="0.04 0 0" mass="0.2" diaginertia="0.0002 0.0005 0.0005"/>
              <joint name="forearm_roll" axis="1 0 0" range="{lim['forearm_roll']}"/>
              <geom class="vis" type="capsule" fromto="0 0 0 {WRIST_ANGLE_X} 0 0" size="0.018" material="arm_light"/>
              <body name="wrist_link" pos="{WRIST_ANGLE_X} 0 0" gravcomp="1">
                <inertial pos="0.03 0 0" mass="0.1" diaginertia="0.0001 0.0001 0.0001"/>
                <joint name="wrist_angle" axis="0 1 0" range="{lim['wrist_angle']}"/>
                <geom class="vis" type="cylinder" size="0.02 0.024" euler="1.5708 0 0" material="arm_dark"/>
                <geom class="vis" type="box" size="0.032 0.018 0.018" pos="0.032 0 0" material="arm_dark"/>
                <body name="gripper_link" pos="{WRIST_ROTATE_X} 0 0" gravcomp="1">
                  <inertial pos="0.04 0 0" mass="0.15" diaginertia="0.0001 0.0001 0.0001"/>
                  <joint name="wrist_rotate" axis="1 0 0" range="{lim['wrist_rotate']}"/>
                  <geom class="vis" type="box" size="0.02 0.03 0.02" pos="0.03 0 0" material="arm_dark"/>
                  <geom class="vis" type="box" size="0.006 0.045 0.012" pos="0.058 0 0" material="arm_dark"/>
                  <site name="ee" pos="{EE_X} 0 0" size="0.004" rgba="1 0 0 0"/>
                  <camera name="wrist" pos="0.03 0 -0.06" xyaxes="0 -1 0 -0.6 0 0.8" fovy="75"/>
                  <body name="left_finger" pos="0.066 0 0" gravcomp="1">
                    <inertial pos="0 0 0" mass="0.02" diaginertia="0.00001 0.00001 0.00001"/>
                    <joint name="left_finger" type="slide" axis="0 1 0" range="{f0} {f1}" damping="2" armature="0.01"/>
                    <geom class="pad" name="left_pad" type="box" size="0.019 0.004 0.011" pos="{pad_x:.6f} {-PAD_INSET + 0.004} 0"/>
                  </body>
                  <body name="right_finger" pos="0.066 0 0" gravcomp="1">
                    <inertial pos="0 0 0" mass="0.02" diaginertia="0.00001 0.00001 0.00001"/>
                    <joint name="right_finger" type="slide" axis="0 -1 0" range="{f0} {f1}" damping="2" armature="0.01"/>
                    <geom class="pad" name="right_pad" type="box" size="0.019 0.004 0.011" pos="{pad_x:.6f} {PAD_INSET - 0.004} 0"/>
                  </body>
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>"""


def _objects_xml() -> str:
    # Pickables: free bodies. Their origin is the grasp point the expert aims at.
    carrot = """
    <body name="carrot" pos="0.3 0 0.013">
      <freejoint name="carrot"/>
      <geom class="obj" type="capsule" fromto="-0.035 0 0 0.03 0 0" size="0.013" material="carrot"/>
      <geom class="obj" type="capsule" fromto="0.03 0 0 0.045 0 0" size="0.006" material="carrot"/>
      <geom class="objvis" type="capsule" fromto="-0.035 0 0 -0.055 0.008 0.004" size="0.004" material="leaf"/>
      <geom class="objvis" type="capsule" fromto="-0.035 0 0 -0.055 -0.008 0.004" size="0.004" material="leaf"/>
    </body>"""
    eggplant = """
    <body name="eggplant" pos="0.3 0.1 0.016">
      <freejoint name="eggplant"/>
      <geom class="obj" type="ellipsoid" size="0.045 0.018 0.016" material="eggplant"/>
      <geom class="obj" type="cylinder" size="0.012 0.006" pos="-0.043 0 0" euler="0 1.5708 0" material="leaf"/>
      <geom class="objvis" type="capsule" fromto="-0.049 0 0 -0.06 0 0.004" size="0.004" material="leaf"/>
    </body>"""
    # banana: an arc of capsules bending toward -y, middle capsule at the origin
    segs = []
    pts = [(-0.05, -0.018), (-0.025, -0.004), (0.0, 0.0), (0.025, -0.004), (0.05, -0.018)]
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
        segs.append(f'<geom class="obj" type="capsule" fromto="{x0} {y0} 0 {x1} {y1} 0" size="0.012" material="banana"/>')
    banana = f"""
    <body name="banana" pos="0.3 -0.1 0.012">
      <freejoint name="banana"/>
      {''.join(segs)}
      <geom class="objvis" type="capsule" fromto="0.05 -0.018 0 0.058 -0.026 0.003" size="0.005" material="stem"/>
    </body>"""
    # Static scenery, moved per episode through model.body_pos.
    plate = """
    <body name="plate" pos="0.3 0.15 0">
      <geom class="obj" type="cylinder" size="0.075 0.004" pos="0 0 0.004" material="plate_rim"/>
      <geom class="objvis" type="cylinder" size="0.056 0.0045" pos="0 0 0.004" material="plate"/>
    </body>"""
    walls = []
    n = 14
    rad = 0.062
    for i in range(n):
        a = 2 * math.pi * i / n
        walls.append(
            f'<geom class="obj" type="box" size="0.005 0.0145 {POT_WALL_HEIGHT / 2}" '
            f'pos="{rad * math.cos(a):.5f} {rad * math.sin(a):.5f} {POT_WALL_HEIGHT / 2}" euler="0 0 {a:.5f}" material="pot"/>'
        )
    pot = f"""
    <body name="pot" pos="0.2 0.2 0">
      <geom class="obj" type="cylinder" size="0.066 0.003" pos="0 0 0.003" material="pot_inside"/>
      {''.join(walls)}
      <geom class="objvis" type="box" size="0.01 0.028 0.005" pos="0 0.085 0.042" material="handle"/>
      <geom class="objvis" type="box" size="0.01 0.028 0.005" pos="0 -0.085 0.042" material="handle"/>
    </body>"""
    towel = """
    <body name="towel" pos="0.2 -0.1 0">
      <geom class="obj" type="box" size="0.065 0.08 0.002" pos="0 0 0.002" material="towel"/>
    </body>"""
    cards = "".join(
        f"""
    <body name="{f}" pos="0.2 0 0">
      <geom class="objvis" type="box" size="{CARD_HALF[0]} {CARD_HALF[1]} 0.0006" pos="0 0 0.0006" material="flag_{f}"/>
    </body>"""
        for f in FLAGS
    )
    return carrot + eggplant + banana + plate + pot + towel + cards


def _flag_assets() -> str:
    return "".join(
        f'<texture name="flag_{f}" type="2d" file="flag_{f}.png"/>'
        f'<material name="flag_{f}" texture="flag_{f}" texrepeat="1 1" specular="0.1"/>'
        for f in FLAGS
    )


def build_mjcf() -> tuple[str, dict[str, bytes]]:
    """The scene as MJCF text plus its in-memory assets (flag textures)."""
    cam_axes = _lookat_xyaxes(SCENE_CAMERA_POS.astype(float), SCENE_CAMERA_TARGET.astype(float))
    cp = " ".join(f"{v:.4f}" for v in SCENE_CAMERA_POS)
    acts = "".join(
        f'<position name="{j}" joint="{j}" kp="{JOINT_KP[j]}" dampratio="1" ctrlrange="{math.radians(JOINT_LIMITS_DEG[j][0]):.6f} {math.radians(JOINT_LIMITS_DEG[j][1]):.6f}"/>'
        for j in ARM_JOINTS
    )
    f0, f1 = FINGER_RANGE
    acts += "".join(
        f'<position name="{s}_finger" joint="{s}_finger" kp="300" dampratio="1" ctrlrange="{f0} {f1}" forcerange="-8 8"/>'
        for s in ("left", "right")
    )
    welds = "".join(f'<weld name="grasp_{p}" body1="gripper_link" body2="{p}" active="false" solref="0.01 1"/>' for p in PICKABLES)
    xml = f"""
<mujoco model="vlm2vla_toy_kitchen">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="0.002" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <visual>
    <quality offsamples="2" shadowsize="1024"/>
    <global offwidth="1024" offheight="1024"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.45 0.45 0.45" specular="0.05 0.05 0.05"/>
  </visual>
  <default>
    <joint damping="1.5" armature="0.02"/>
    <default class="vis"><geom contype="0" conaffinity="0" group="1"/></default>
    <default class="objvis"><geom contype="0" conaffinity="0" group="1"/></default>
    <default class="obj"><geom contype="1" conaffinity="1" condim="6" friction="1 0.01 0.003" solref="0.005 1" density="400"/></default>
    <default class="pad"><geom contype="1" conaffinity="1" friction="1.5 0.02 0.002" solref="0.005 1" rgba="0.15 0.15 0.15 1" density="800"/></default>
  </default>
  <asset>
    <texture name="wood" type="2d" builtin="checker" rgb1="0.62 0.47 0.32" rgb2="0.58 0.43 0.29" width="256" height="256" mark="random" markrgb="0.5 0.37 0.25" random="0.15"/>
    <material name="table" texture="wood" texrepeat="6 6" specular="0.1"/>
    <texture name="wall" type="2d" builtin="flat" rgb1="0.86 0.84 0.8" width="16" height="16"/>
    <material name="wall" texture="wall" specular="0"/>
    <texture name="towel" type="2d" builtin="checker" rgb1="0.2 0.45 0.8" rgb2="0.92 0.92 0.95" width="64" height="64"/>
    <material name="towel" texture="towel" texrepeat="4 4" specular="0"/>
    <material name="arm_dark" rgba="0.12 0.12 0.13 1" specular="0.3"/>
    <material name="arm_light" rgba="0.22 0.22 0.24 1" specular="0.3"/>
    <material name="carrot" rgba="0.98 0.45 0.05 1" specular="0.2"/>
    <material name="leaf" rgba="0.2 0.6 0.15 1"/>
    <material name="eggplant" rgba="0.35 0.1 0.45 1" specular="0.5" shininess="0.8"/>
    <material name="banana" rgba="0.98 0.86 0.2 1" specular="0.2"/>
    <material name="stem" rgba="0.35 0.28 0.1 1"/>
    <material name="plate" rgba="0.96 0.96 0.94 1" specular="0.4"/>
    <material name="plate_rim" rgba="0.55 0.75 0.95 1" specular="0.4"/>
    <material name="pot" rgba="0.62 0.64 0.68 1" specular="0.8" shininess="0.7"/>
    <material name="pot_inside" rgba="0.45 0.46 0.5 1" specular="0.5"/>
    <material name="handle" rgba="0.1 0.1 0.1 1"/>
    {_flag_assets()}
  </asset>
  <worldbody>
    <light name="sun" pos="0.1 -0.2 1.2" dir="0.1 0.15 -1" diffuse="0.6 0.6 0.6" castshadow="true"/>
    <geom name="table" type="box" size="0.45 0.55 0.02" pos="0.2 0.05 -0.02" material="table" contype="1" conaffinity="1" friction="1 0.01 0.001"/>
    <geom name="wall_back" class="vis" type="box" size="0.01 0.6 0.3" pos="0.66 0.05 0.28" material="wall"/>
    <geom name="wall_left" class="vis" type="box" size="0.45 0.01 0.3" pos="0.2 0.6 0.28" material="wall"/>
    <camera name="scene" pos="{cp}" xyaxes="{cam_axes}" fovy="44"/>
    {_arm_xml()}
    {_objects_xml()}
  </worldbody>
  <equality>{welds}</equality>
  <actuator>{acts}</actuator>
</mujoco>
"""
    assets = {f"flag_{f}.png": _png(draw_flag(f)) for f in FLAGS}
    return xml, assets
