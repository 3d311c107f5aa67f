# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Shared pieces of the node process tests: a small pi0.5 and its W4A4 artifact, DDS settings.

The policy is the real architecture at CPU size (Pi05Config.small) with random weights, a
real tokenizer and a real omega-recipe quantization; it is what the node tests run until a
trained bundled policy exists. The test below checks the artifact is a loadable W4A4 model.
"""

import atexit
import copy
import os
import random
import shutil
import tempfile

import numpy as np
from omegaq_ros.policy.checkpoint import save_lerobot_checkpoint
from omegaq_ros.policy.pi05_config import Pi05Config
from omegaq_ros.policy.pi05_model import Pi05Model
from omegaq_ros.policy.pi05_processing import (Normalizer, prepare_images, state_prompt,
                                               train_prompt_tokenizer)
from omegaq_ros.policy.pi05_runtime import Pi05Policy
from omegaq_ros.policy.recipes import method_recipe
from omegaq_ros.quant import quantize, save_artifact
from omegaq_ros.robot import arx_r5
from omegaq_ros.sim.tasks import TASKS
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILE = os.path.join(ROOT, 'config', 'fastdds_shm.xml')
INSTRUCTIONS = [task.instruction for task in TASKS.values()]
_SHARED = {}


def build_checkpoint(root: str) -> str:
    """Write a small FP pi0.5 checkpoint (LeRobot layout, tokenizer) and return its path."""
    torch.manual_seed(0)
    config = Pi05Config.small()
    model = Pi05Model(config)
    limits = arx_r5.limits_14d().astype(np.float32)
    stats = {'q01': limits[:, 0] * 0.5, 'q99': limits[:, 1] * 0.5}
    normalizers = {'observation.state': Normalizer('QUANTILES', stats),
                   'action': Normalizer('QUANTILES', stats)}
    tokenizer = train_prompt_tokenizer(INSTRUCTIONS, os.path.join(root, 'tok.model'),
                                       vocab_size=300)
    return save_lerobot_checkpoint(model, os.path.join(root, 'checkpoint'), normalizers,
                                   tokenizer)


def build_artifact(root: str, checkpoint: str) -> str:
    """Quantize the checkpoint with the omega recipe on random observations; return the path."""
    policy = Pi05Policy.load(checkpoint)
    config = policy.config
    rng = np.random.default_rng(0)
    batches = []
    for index in range(4):
        images = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in config.cameras]
        tokens, mask = policy.tokenizer(state_prompt(INSTRUCTIONS[index % 3],
                                                     rng.uniform(-1, 1, 14)))
        image_list, masks = prepare_images(images, [True] * 3, config.vision.image_size,
                                           torch.device('cpu'))
        batches.append({'images': image_list, 'image_masks': masks,
                        'tokens': torch.from_numpy(tokens)[None],
                        'token_masks': torch.from_numpy(mask)[None],
                        'noise': torch.randn(1, config.horizon, config.max_action_dim)})
    recipe = method_recipe('omega')
    model = quantize(copy.deepcopy(policy.model), batches, recipe)
    return save_artifact(model, recipe, os.path.join(root, 'w4a4'),
                         extra_manifest=policy.artifact_extra(),
                         extra_files=policy.extra_files())


def shared_policy():
    """Return (checkpoint, artifact), built once per test session in a temporary directory."""
    if not _SHARED:
        root = tempfile.mkdtemp(prefix='omegaq-node-tests-')
        atexit.register(shutil.rmtree, root, True)
        checkpoint = build_checkpoint(root)
        _SHARED.update(checkpoint=checkpoint, artifact=build_artifact(root, checkpoint))
    return _SHARED['checkpoint'], _SHARED['artifact']


def ros_env(**extra) -> dict:
    """Return os.environ with a random domain, localhost discovery and the SHM profile."""
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(random.randint(1, 101)),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', RMW_IMPLEMENTATION='rmw_fastrtps_cpp',
               FASTDDS_DEFAULT_PROFILES_FILE=PROFILE, FASTRTPS_DEFAULT_PROFILES_FILE=PROFILE,
               PYTHONUNBUFFERED='1')
    env.update(extra)
    return env


def test_small_artifact_is_a_loadable_w4a4_policy():
    _, artifact = shared_policy()
    policy = Pi05Policy.load(artifact)
    assert policy.quantized and policy.tokenizer is not None
    images = [np.zeros((96, 96, 3), np.uint8)] * 3
    chunk = policy.predict(images, np.zeros(14, np.float32), INSTRUCTIONS[0])
    assert chunk.shape == (policy.config.horizon, 14) and np.all(np.isfinite(chunk))
