"""Synthetic look-alikes of GTSDB and PennFudan, written in the real datasets' raw layouts.

Deterministic by seed. The task is meant to be learnable in minutes but not trivial: signs of
several shapes, colours and inner symbols on cluttered backgrounds, with blur, noise, occlusion
and lighting changes; people of varied size and pose with instance masks.
"""

from qdet.data.synthetic.people import write_pennfudan
from qdet.data.synthetic.signs import draw_sign, write_gtsdb

__all__ = ["GENERATORS", "draw_sign", "write_gtsdb", "write_pennfudan"]

GENERATORS = {"gtsdb": write_gtsdb, "pennfudan": write_pennfudan}
