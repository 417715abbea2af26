"""Foot lock (tasks.dance.footlock): two-bone IK reaches its targets; planted feet stop sliding; nothing else moves."""
import numpy as np
import pytest

from tasks.dance import footlock as F
from tasks.dance import metrics as M
from tasks.dance import skeleton as sk
from tasks.dance.synth import make_pair

LEGS = [1, 2, 4, 5, 7, 8, 10, 11]  # hips, knees, ankles, toes: the only joints the lock may move


@pytest.fixture(scope="module")
def dance():
    d = make_pair(3, 6.0)["dance"]
    return sk.pack_motion(d["contacts"], d["root_pos"], d["rotations"]).astype(np.float32)


def _joints(motion):
    _, root, rot = sk.unpack_motion(motion)
    return sk.forward_kinematics(root, rot)


def test_forward_kinematics_global_rotations(dance):
    _, root, rot = sk.unpack_motion(dance)
    P, G = sk.forward_kinematics(root, rot, return_global=True)
    assert np.array_equal(P, sk.forward_kinematics(root, rot))
    for j in range(1, sk.NUM_JOINTS):
        p = sk.PARENTS[j]
        assert np.allclose(G[:, j], G[:, p] @ rot[:, j], atol=1e-5)
        assert np.allclose(P[:, j], P[:, p] + G[:, p] @ sk.REST_OFFSETS[j], atol=1e-5)


@pytest.mark.parametrize("leg", ["left", "right"])
def test_two_bone_ik_reaches_reachable_targets(dance, leg):
    _, root, rot = sk.unpack_motion(dance)
    rot, root = rot.astype(np.float64), root.astype(np.float64)
    P, G = sk.forward_kinematics(root, rot, return_global=True)
    hip, knee, ankle, _ = F.LEGS[leg]
    target = P[:, ankle] + np.random.default_rng(0).normal(0, 0.03, (len(P), 3))
    reach = np.linalg.norm(P[:, knee] - P[:, hip], axis=-1) + np.linalg.norm(P[:, ankle] - P[:, knee], axis=-1)
    ok = np.linalg.norm(target - P[:, hip], axis=-1) < reach - 1e-3
    assert ok.mean() > 0.5
    solved = rot.copy()
    F.two_bone_ik(solved, G, P, leg, target, np.arange(len(P)))
    P2, G2 = sk.forward_kinematics(root, solved, return_global=True)
    assert np.linalg.norm(P2[ok, ankle] - target[ok], axis=-1).max() < 1e-6
    assert np.allclose(G2[:, ankle], G[:, ankle], atol=1e-6)  # the foot keeps its orientation
    others = [j for j in range(sk.NUM_JOINTS) if j not in (knee, ankle, ankle + 3)]
    assert np.allclose(P2[:, others], P[:, others])


def test_lock_plants_jittering_feet(dance):
    """Jitter the legs of a real dance: the locked result's planted feet are still again, only legs change."""
    c, root, rot = sk.unpack_motion(dance)
    aa = np.random.default_rng(1).normal(0, 0.003, (len(rot), 4, 3)).astype(np.float32)
    noisy_rot = rot.copy()
    noisy_rot[:, [1, 2, 4, 5]] = rot[:, [1, 2, 4, 5]] @ sk.axis_angle_to_matrix(aa)
    noisy = sk.pack_motion(c, root, noisy_rot)
    locked = F.lock_feet(noisy, follow=False)  # legs only (the root-following pass is tested below)
    gt, before, after = _joints(dance), _joints(noisy), _joints(locked)
    assert M.pfc(before) > 10 * M.pfc(gt)
    assert M.pfc(after) <= 1.2 * M.pfc(gt)

    def slide(j):  # horizontal ankle speed on frames the labels mark as planted
        v = np.linalg.norm(np.diff(j[:, [7, 8]][..., [0, 2]], axis=0), axis=-1)
        planted = (c[1:, [0, 2]] > 0.5) & (c[:-1, [0, 2]] > 0.5)
        return v[planted].mean()
    assert slide(after) < 0.1 * slide(before)
    others = [j for j in range(sk.NUM_JOINTS) if j not in LEGS]
    assert np.allclose(after[:, others], before[:, others], atol=1e-5)
    assert np.array_equal(locked[:, :7], noisy[:, :7])  # contacts and root untouched
    bone = lambda j, a, b: np.linalg.norm(j[:, a] - j[:, b], axis=-1)  # noqa: E731
    for a, b in ((1, 4), (4, 7), (2, 5), (5, 8)):
        assert np.allclose(bone(after, a, b), bone(before, a, b), atol=1e-5)


def test_lock_leaves_steps_and_flight_alone(dance):
    c, root, rot = sk.unpack_motion(dance)
    no_contact = sk.pack_motion(np.zeros_like(c), root, rot)
    assert np.allclose(F.lock_feet(no_contact), no_contact, atol=1e-5)
    # labelled "in contact" all along while the dancer travels 30 cm: re-planted as it goes, never dragged behind
    walk = root + np.linspace(0, 0.3, len(root))[:, None] * np.array([1.0, 0.0, 0.0], np.float32)
    all_on = sk.pack_motion(np.ones_like(c), walk, rot)
    before, after = _joints(all_on), _joints(F.lock_feet(all_on, max_slide=0.05, blend=3, follow=False))
    gap = np.linalg.norm(after[:, [7, 8]][..., [0, 2]] - before[:, [7, 8]][..., [0, 2]], axis=-1)
    assert gap.max() <= 0.1 + 1e-4
    v = np.linalg.norm(np.diff(after[:, [7, 8]][..., [0, 2]], axis=0), axis=-1)
    assert (v < 1e-4).mean() > 0.5  # mostly standing still, moving in short re-plants


def test_root_follows_the_support_foot(dance):
    """A dance whose whole body skates 30 cm sideways: the root follows the planted feet, so the feet stand still
    again and the body is where the steps put it (the clean dance, shifted by a constant)."""
    c, root, rot = sk.unpack_motion(dance)
    on = np.stack([(c[:, [0, 1]] > 0.5).any(1), (c[:, [2, 3]] > 0.5).any(1)], 1)
    assert on.any(1).all()  # this dance always has a foot down
    drift = np.linspace(0, 0.3, len(root))[:, None] * np.array([1.0, 0.0, 0.0], np.float32)
    skating = sk.pack_motion(c, root + drift, rot)
    followed, plant = F.follow_support(skating)
    assert np.array_equal(followed[:, 7:], skating[:, 7:]) and np.array_equal(followed[:, :4], skating[:, :4])
    _, root2, _ = sk.unpack_motion(followed)
    shift = root2 - root
    assert np.abs(shift - shift[0]).max() < 1e-3  # the 30 cm drift is gone (to 1 mm), up to where frame 0 stood
    assert np.abs(shift[:, 1]).max() == 0.0  # heights untouched
    # a labelled foot that still moves fast is not planted: the clean dance's own contact frames stay planted
    assert (plant > 0.5).sum() <= (c > 0.5).sum() and ((plant > 0.5) & (c < 0.5)).sum() == 0
    gt, locked = _joints(dance), _joints(F.lock_feet(skating))
    assert M.pfc(_joints(skating)) > 10 * max(M.pfc(gt), 1e-9)
    assert M.pfc(locked) <= 1.2 * M.pfc(gt) + 1e-12


def test_lock_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"\(T, 151\)"):
        F.lock_feet(np.zeros((10, 150)))
