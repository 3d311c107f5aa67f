# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Quantize a pi0.5 checkpoint with calibration episodes read from rosbag2 (no ROS needed).

quantize_from_bags() is the work of omegaq-quantize (quantize_cli.py) and of the quantizer node
(nodes/quantizer_node.py). Steps:
  1. find the episode bags: a bag directory (metadata.yaml) or a directory of bag directories;
     MCAP and sqlite3 storage are read through `rosbags`;
  2. per bag, assemble observations the way the policy node does: joint states matched by
     name (per-arm messages are combined), and for every full joint state the camera images
     whose header stamps lie within `sync_slop` of it; the instruction is the bag's
     /instruction (or `default_instruction`);
  3. turn each sampled observation into a model call with Pi05Policy's own checks and
     preprocessing (image resize-with-pad, state normalization, the state prompt, tokenizer);
  4. quantize with the recipe (a preset name on the pi0.5 scope, or a recipe YAML), write the
     artifact atomically with its report (report.json + PNGs, checksummed in the manifest).
Anything wrong (unreadable bag, missing topic, too few episodes, an existing output) raises
CalibrationError before the output directory is created, so nothing half-written is left.
"""

import glob
import math
import os
import shutil
import tempfile
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from omegaq_ros import topics
from omegaq_ros.payloads import (compressed_image_to_rgb, ConversionError, image_to_rgb,
                                 nearest_stamps, stamp_to_seconds)
from omegaq_ros.policy.bundled import bundled_model
from omegaq_ros.policy.recipes import load_recipe
from omegaq_ros.robot import arx_r5

CAMERA_NAMES = arx_r5.CAMERA_NAMES
CAMERA_TOPICS = tuple(topics.camera_image(name) for name in CAMERA_NAMES)
IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
REPORT_FILES = ('report.json', 'ratios.png', 'error.png')


class CalibrationError(ValueError):
    """Calibration data or settings are unusable: the text says what was expected."""


# ---------------------------------------------------------------------------- bags


def find_bags(paths: Sequence[str]) -> List[str]:
    """Return the bag directories named by paths (bags, or directories of bags), sorted."""
    bags = []
    for path in paths:
        if not os.path.exists(path):
            raise CalibrationError(f'calibration: {path} does not exist')
        if os.path.isfile(os.path.join(path, 'metadata.yaml')):
            bags.append(os.path.abspath(path))
            continue
        pattern = os.path.join(path, '*', 'metadata.yaml')
        found = sorted(os.path.dirname(p) for p in glob.glob(pattern))
        if not found:
            raise CalibrationError(f'calibration: {path} is not a rosbag2 directory '
                                   '(no metadata.yaml) and holds no bag directories')
        bags += [os.path.abspath(p) for p in found]
    return bags


def _stamp(message) -> float:
    return stamp_to_seconds(message.header.stamp)


def decode_image(message, msgtype: str) -> np.ndarray:
    """Return uint8 [H, W, 3] RGB of a rosbags Image (rgb8/bgr8) or CompressedImage."""
    try:
        if msgtype.endswith('CompressedImage'):
            return compressed_image_to_rgb(message)
        return np.array(image_to_rgb(message))
    except ConversionError as error:
        raise CalibrationError(str(error)) from None


def _read_bag(path: str, wanted: Sequence[str]) -> Dict[str, list]:
    """Return {topic: [(msgtype, message), ...]} of the wanted topics, or raise why not."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import get_typestore, Stores
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    out = {topic: [] for topic in wanted}
    try:
        with Reader(path) as reader:
            present = {c.topic: c.msgtype for c in reader.connections}
            missing = [topic for topic in wanted if topic not in present]
            if missing:
                raise CalibrationError(f'{path}: missing topics {missing}; the bag has '
                                       f'{sorted(present)}')
            connections = [c for c in reader.connections if c.topic in out]
            for connection, _, raw in reader.messages(connections=connections):
                out[connection.topic].append(
                    (connection.msgtype, typestore.deserialize_cdr(raw, connection.msgtype)))
    except CalibrationError:
        raise
    except Exception as error:       # rosbags raises many types for broken files
        raise CalibrationError(f'{path}: not a readable rosbag2 '
                               f'({type(error).__name__}: {error})') from None
    return out


def episode_observations(path: str, camera_topics: Sequence[str], joint_states_topic: str,
                         instruction_topic: str, sync_slop: float, quota: int,
                         rng: np.random.Generator, default_instruction: str = '') -> list:
    """
    Return up to `quota` observations (images list, state [14], instruction) of one bag.

    A full joint state (all 14 names, per-arm parts within sync_slop) anchors a candidate;
    every camera contributes its image nearest in stamp, at most sync_slop away. Topic names
    are read as a node in the root namespace reads them ('joint_states' is /joint_states).
    """
    camera_topics = [topics.absolute(topic) for topic in camera_topics]
    joint_states_topic = topics.absolute(joint_states_topic)
    instruction_topic = topics.absolute(instruction_topic)
    wanted = [*camera_topics, joint_states_topic]
    optional_instruction = bool(default_instruction)
    if not optional_instruction:
        wanted.append(instruction_topic)
    messages = _read_bag(path, wanted)
    for topic in camera_topics:
        kinds = {msgtype for msgtype, _ in messages[topic]}
        if not kinds or not kinds <= set(IMAGE_TYPES):
            raise CalibrationError(f'{path}: {topic}: expected {list(IMAGE_TYPES)} messages, '
                                   f'got {sorted(kinds) or "none"}')
    instruction = default_instruction
    if messages.get(instruction_topic):
        instruction = str(messages[instruction_topic][-1][1].data)
    if not instruction.strip():
        raise CalibrationError(f'{path}: {instruction_topic} holds no instruction')
    states, latest = [], {}
    names = arx_r5.JOINT_NAMES
    for _, message in messages[joint_states_topic]:
        stamp = _stamp(message)
        for name, value in zip(message.name, message.position):
            if name in names:
                latest[name] = (stamp, float(value))
        if len(latest) == len(names):
            stamps = [latest[name][0] for name in names]
            if max(stamps) - min(stamps) <= sync_slop:
                states.append((min(stamps), np.array([latest[n][1] for n in names],
                                                     dtype=np.float32)))
    if not states:
        raise CalibrationError(f'{path}: {joint_states_topic} never holds all joints '
                               f'{list(names)}')
    anchors = np.array([stamp for stamp, _ in states])
    nearest = [nearest_stamps([_stamp(m) for _, m in messages[topic]], anchors)
               for topic in camera_topics]
    candidates = [(state, [int(picks[i]) for picks, _ in nearest])
                  for i, (_, state) in enumerate(states)
                  if all(skew[i] <= sync_slop for _, skew in nearest)]
    if not candidates:
        raise CalibrationError(f'{path}: no joint state has images from every camera within '
                               f'sync_slop {sync_slop} s')
    chosen = sorted(rng.choice(len(candidates), size=min(quota, len(candidates)),
                               replace=False))
    observations = []
    for index in chosen:
        state, picks = candidates[index]
        images = [decode_image(messages[topic][pick][1], messages[topic][pick][0])
                  for topic, pick in zip(camera_topics, picks)]
        observations.append((images, state, instruction))
    return observations


# ---------------------------------------------------------------------------- batches


def calibration_batch(policy, images: Sequence[np.ndarray], state, instruction: str,
                      rng: np.random.Generator) -> dict:
    """Return one model call, as Pi05Policy.predict() makes it; the noise is drawn from rng."""
    config = policy.config
    noise = rng.standard_normal((config.horizon, config.max_action_dim)).astype(np.float32)
    return policy.model_call(images, state, instruction, noise=noise)


# ---------------------------------------------------------------------------- the job


def quantize_from_bags(checkpoint: str, calibration: Sequence[str], output: str,
                       recipe: str = 'omega', overwrite: bool = False, min_episodes: int = 1,
                       max_samples: int = 256, device: str = 'cpu', seed: int = 0,
                       camera_names: Sequence[str] = CAMERA_NAMES,
                       camera_topics: Sequence[str] = CAMERA_TOPICS,
                       joint_states_topic: str = topics.JOINT_STATES,
                       instruction_topic: str = topics.INSTRUCTION, sync_slop: float = 0.02,
                       default_instruction: str = '', embodiment: str = '',
                       progress: Optional[Callable[[str], None]] = None) -> dict:
    """
    Quantize `checkpoint` with observations from the bags; return a summary dict.

    embodiment: for a GR00T checkpoint, the tag of experiment_cfg/metadata.json to serve
    ('' = its only one); pi0.5 has none.

    Raises CalibrationError (nothing written) for bad settings or calibration data.
    """
    say = progress or (lambda message: None)
    output = _checked_output(output, overwrite)
    if len(camera_names) != len(camera_topics):
        raise CalibrationError(f'expected one camera topic per camera name {list(camera_names)},'
                               f' got {list(camera_topics)}')
    if not max_samples >= 1 or not min_episodes >= 1:
        raise CalibrationError(f'expected max_samples >= 1 and min_episodes >= 1, got '
                               f'{max_samples} and {min_episodes}')
    bags = _episode_bags(calibration, min_episodes)
    checkpoint = _fp_checkpoint(checkpoint)
    from omegaq_ros.policy.registry import policy_family
    try:
        # The checkpoint's family (pi0.5 or GR00T) selects the runtime and the recipe's scope.
        recipe_obj = load_recipe(recipe, policy_family(checkpoint))
    except ValueError as error:       # RecipeError, UnknownPolicyError (both ValueErrors)
        raise CalibrationError(str(error)) from None
    policy = _load_fp_policy(checkpoint, device, embodiment or None)
    ordered_topics = _topics_in_policy_order(policy, camera_names, camera_topics)
    rng = np.random.default_rng(seed)
    observations = _sample_observations(
        bags, max_samples, rng, say, camera_topics=ordered_topics,
        joint_states_topic=joint_states_topic, instruction_topic=instruction_topic,
        sync_slop=sync_slop, default_instruction=default_instruction)
    try:
        batches = [calibration_batch(policy, *obs, rng) for obs in observations]
    except ValueError as error:
        raise CalibrationError(f'calibration observation refused by the policy: {error}') \
            from None
    say(f'quantizing with recipe {recipe_obj.name!r} on {len(batches)} observations from '
        f'{len(bags)} episodes')
    summary, report = quantize_policy(
        policy, batches, recipe_obj, output, overwrite=overwrite, progress=say,
        calibration_info={'episodes': len(bags), 'observations': len(batches),
                          'bags': [os.path.basename(b) for b in bags],
                          'sync_slop_s': sync_slop, 'seed': seed})
    say(f'wrote {output}')
    return {'output': output, 'episodes': len(bags), 'observations': len(batches),
            'quantized_layers': summary['calibration'].get('quantized_layers', 0),
            'totals': report.get('totals', {})}


def _checked_output(output: str, overwrite: bool) -> str:
    """Return the artifact directory as an absolute path, refused before any work if taken."""
    if not output:
        raise CalibrationError('output: expected an artifact directory to write, got ""')
    output = os.path.abspath(output)
    if os.path.exists(output) and not overwrite:
        raise CalibrationError(f'output {output} already exists (set overwrite to replace it)')
    return output


def _episode_bags(calibration, min_episodes: int) -> List[str]:
    """Return the episode bags named by `calibration` (a path or paths), at least min_episodes."""
    if isinstance(calibration, str):
        calibration = [calibration]
    if not calibration or not all(calibration):
        raise CalibrationError('calibration: expected rosbag2 directories, got none')
    bags = find_bags(calibration)
    if len(bags) < min_episodes:
        raise CalibrationError(f'calibration: expected at least min_episodes={min_episodes} '
                               f'episode bags, found {len(bags)} in {list(calibration)}')
    return bags


def _fp_checkpoint(checkpoint: str) -> str:
    """Return the FP checkpoint to quantize (the bundled one for ''), refusing an artifact."""
    from omegaq_ros.quant import is_artifact
    if not checkpoint:
        checkpoint = bundled_model('checkpoint')
    if is_artifact(checkpoint):
        raise CalibrationError(f'checkpoint {checkpoint} is already a quantized artifact; '
                               'give the FP checkpoint')
    return checkpoint


def _load_fp_policy(checkpoint: str, device: str, embodiment: Optional[str] = None):
    """Return the policy of an FP checkpoint, pi0.5 or GR00T (by the registry), or say why."""
    from omegaq_ros.policy.registry import load_policy
    try:
        return load_policy(checkpoint, device, embodiment=embodiment)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise CalibrationError(f'checkpoint {checkpoint}: cannot load ({error})') from None


def _topics_in_policy_order(policy, camera_names, camera_topics) -> list:
    """Return the camera topics in the order of the policy's cameras, or say which is missing."""
    order = [list(camera_names).index(c) if c in camera_names else -1
             for c in policy.config.cameras]
    if min(order) < 0:
        raise CalibrationError(f'the policy expects cameras {list(policy.config.cameras)}, '
                               f'camera_names gives {list(camera_names)}')
    return [camera_topics[i] for i in order]


def _sample_observations(bags, max_samples: int, rng: np.random.Generator, say,
                         **episode_options) -> list:
    """
    Return at most max_samples observations drawn evenly over the bags.

    Each bag gives up to its share (ceil(max_samples / bags)) so short episodes do not starve
    the sample; the surplus is then thinned at random to max_samples.
    """
    quota = math.ceil(max_samples / len(bags))
    observations = []
    for index, bag in enumerate(bags):
        found = episode_observations(bag, quota=quota, rng=rng, **episode_options)
        observations += found
        say(f'read bag {index + 1}/{len(bags)}: {os.path.basename(bag)} '
            f'({len(found)} observations)')
    if len(observations) > max_samples:
        keep = sorted(rng.choice(len(observations), size=max_samples, replace=False))
        observations = [observations[i] for i in keep]
    return observations


def quantize_policy(policy, batches, recipe, output: str, overwrite: bool = False,
                    progress: Optional[Callable[[str], None]] = None,
                    calibration_info: Optional[dict] = None, copy: bool = False):
    """
    Quantize a policy's model on model calls and write the artifact with its report.

    The one quantize-then-save (omegaq-quantize, the quantizer node, omegaq-eval). copy:
    quantize a copy and leave policy.model as it is. Returns (summary, report totals dict).
    """
    import copy as copying
    from omegaq_ros.quant import quantize, save_artifact
    from omegaq_ros.quant.report import write_report
    model = copying.deepcopy(policy.model) if copy else policy.model
    model = quantize(model, batches, recipe, progress=progress)
    summary = model.omegaq_summary
    summary['calibration'].update(calibration_info or {})
    report_dir = tempfile.mkdtemp(prefix='.omegaq-report-')
    try:
        report = write_report(summary, report_dir, f'{os.path.basename(output)} '
                              f'({recipe.name})')
        extra_files = dict(policy.extra_files())
        extra_files.update({name: os.path.join(report_dir, name) for name in REPORT_FILES
                            if os.path.isfile(os.path.join(report_dir, name))})
        save_artifact(model, recipe, output, extra_manifest=policy.artifact_extra(),
                      overwrite=overwrite, extra_files=extra_files)
    finally:
        shutil.rmtree(report_dir, ignore_errors=True)
    return summary, report
