# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Load and save pi0.5 checkpoints in LeRobot's layout.

A LeRobot `pi05` checkpoint directory holds `config.json` and `model.safetensors` (keys
`model.paligemma_with_expert....`, as PI05Policy.save_pretrained writes them) and, for a
trained policy, the processor files whose `*normalizer_processor.safetensors` carry the
normalization statistics as `<feature>.<stat>` tensors. We add two optional files:
`tokenizer.model` (SentencePiece) and, in config.json, `omegaq_pi05_config` holding the exact
sizes for architectures LeRobot's variants cannot describe (our small configuration).

Checkpoints trained with relative actions (`use_relative_actions`, LeRobot's
`absolute_actions_processor` post-processor step) are refused: their model predicts actions
relative to the state and LeRobot adds the state back (except `relative_exclude_joints`)
after unnormalization, which this loader does not reproduce, so every action would miss the
state.
"""

import glob
import json
import os
import re
import shutil
from typing import Dict, Optional

from omegaq_ros.policy.model_config import VisionSize
from omegaq_ros.policy.pi05_config import GEMMA_2B, GEMMA_300M, Pi05Config
from omegaq_ros.policy.pi05_model import Pi05Model
from omegaq_ros.policy.pi05_processing import Normalizer
from safetensors import safe_open
from safetensors.torch import save_file
import torch

VARIANTS = {'gemma_2b': GEMMA_2B, 'gemma_300m': GEMMA_300M}
SKIPPED = re.compile(r'(^|\.)lm_head\.')
STATE_KEY = 'observation.state'
ACTION_KEY = 'action'
TOKENIZER_FILE = 'tokenizer.model'


class CheckpointError(ValueError):
    """The checkpoint does not fit the pi0.5 architecture (the message lists what is wrong)."""


def _canonical(key: str) -> str:
    key = key[len('model.'):] if key.startswith('model.') else key
    for old in ('action_time_mlp_in.', 'action_time_mlp_out.'):
        if key.startswith(old):
            key = key.replace('action_time_mlp_', 'time_mlp_', 1)
    return key


def _depth(keys, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r'\.(\d+)\.')
    found = {int(m.group(1)) for k in keys for m in [pattern.match(k)] if m}
    return max(found) + 1 if found else 0


def config_from_lerobot(data: dict, keys, shapes) -> Pi05Config:
    """Build our config from LeRobot's config.json and the checkpoint's tensor shapes."""
    if data.get('type') != 'pi05':
        raise CheckpointError(f"config.json type is '{data.get('type')}', expected 'pi05'")
    if 'omegaq_pi05_config' in data:
        return Pi05Config.from_dict(data['omegaq_pi05_config'])
    variants = (data.get('paligemma_variant', 'gemma_2b'),
                data.get('action_expert_variant', 'gemma_300m'))
    for variant in variants:
        if variant not in VARIANTS:
            raise CheckpointError(f"unknown Gemma variant '{variant}'; known {list(VARIANTS)}")
    base = 'paligemma_with_expert.'
    language_depth = _depth(keys, base + 'paligemma.model.language_model.layers')
    expert_depth = _depth(keys, base + 'gemma_expert.model.layers')
    vision_depth = _depth(keys, base + 'paligemma.model.vision_tower.vision_model.encoder.layers')
    language = VARIANTS[variants[0]]
    expert = VARIANTS[variants[1]]
    language = type(language)(**{**language.__dict__, 'depth': language_depth})
    expert = type(expert)(**{**expert.__dict__, 'depth': expert_depth})
    features = data.get('input_features', {})
    cameras = tuple(k[len('observation.images.'):] for k, v in features.items()
                    if v.get('type') == 'VISUAL')
    state_shape = features.get(STATE_KEY, {}).get('shape', [data.get('max_state_dim', 32)])
    action_shape = data.get('output_features', {}).get(ACTION_KEY, {}).get('shape', [32])
    vocab = shapes[base + 'paligemma.model.language_model.embed_tokens.weight'][0]
    return Pi05Config(
        vision=VisionSize(depth=vision_depth,
                          image_size=int(data.get('image_resolution', [224, 224])[0])),
        language=language, expert=expert, vocab_size=vocab,
        max_action_dim=data.get('max_action_dim', 32), max_state_dim=data.get('max_state_dim', 32),
        action_dim=int(action_shape[0]), state_dim=int(state_shape[0]),
        horizon=data.get('chunk_size', 50), num_steps=data.get('num_inference_steps', 10),
        min_period=data.get('min_period', 4e-3), max_period=data.get('max_period', 4.0),
        tokenizer_max_length=data.get('tokenizer_max_length', 200),
        cameras=cameras or Pi05Config().cameras)


def read_normalizers(path: str, config_data: dict) -> Dict[str, Normalizer]:
    """Read the state and action normalization from the processor files, when present."""
    mapping = config_data.get('normalization_mapping', {})
    modes = {STATE_KEY: mapping.get('STATE', 'QUANTILES'),
             ACTION_KEY: mapping.get('ACTION', 'QUANTILES')}
    stats: Dict[str, dict] = {STATE_KEY: {}, ACTION_KEY: {}}
    for file in sorted(glob.glob(os.path.join(path, '*normalizer_processor.safetensors'))):
        with safe_open(file, 'np') as reader:
            for key in reader.keys():
                feature, _, stat = key.rpartition('.')
                if feature in stats:
                    stats[feature][stat] = reader.get_tensor(key)
    return {feature: Normalizer(modes[feature], values)
            for feature, values in stats.items() if values or modes[feature] == 'IDENTITY'}


ABSOLUTE_STEP = 'absolute_actions_processor'    # LeRobot's post-processor: action + state


def relative_actions_problem(path: str, config_data: dict) -> Optional[str]:
    """Return why a checkpoint trained with relative actions cannot load here, or None."""
    flag = config_data.get('use_relative_actions', False)
    excluded = config_data.get('relative_exclude_joints', ['gripper'])
    sources = []
    if flag not in (False, None):
        sources.append(f'config.json use_relative_actions={json.dumps(flag)}')
    for file in sorted(glob.glob(os.path.join(path, '*postprocessor*.json'))):
        try:
            with open(file) as stream:
                steps = json.load(stream).get('steps', [])
            enabled = [step for step in steps if isinstance(step, dict)
                       and step.get('registry_name') == ABSOLUTE_STEP
                       and (step.get('config') or {}).get('enabled', True) is not False]
        except (OSError, ValueError, AttributeError) as error:
            return f'{file} cannot be read to check for relative actions: {error}'
        if enabled:
            sources.append(f'{os.path.basename(file)} has an enabled {ABSOLUTE_STEP} step')
            excluded = (enabled[0].get('config') or {}).get('exclude_joints', excluded)
    if not sources:
        return None
    return (f"{path} was trained with relative actions ({'; '.join(sources)}): its model "
            'predicts actions relative to the state, and LeRobot adds the state back after '
            f'unnormalization (joints matching {excluded} stay absolute). omegaq_ros does not '
            'apply that step, so every action would miss the state; refused. Use a checkpoint '
            'trained with absolute actions.')


def load_lerobot_checkpoint(path: str, device: str = 'cpu'):
    """
    Load a LeRobot pi05 checkpoint directory.

    Returns (model in eval mode, config, normalizers {'observation.state', 'action'} as far
    as present, tokenizer path or None). Missing or unexpected keys and wrong shapes or
    dtypes are refused with a CheckpointError that lists them; lm_heads are skipped unread.
    """
    config_path = os.path.join(path, 'config.json')
    weights_path = os.path.join(path, 'model.safetensors')
    for needed in (config_path, weights_path):
        if not os.path.isfile(needed):
            raise CheckpointError(f'{path} is not a LeRobot pi05 checkpoint: '
                                  f'{os.path.basename(needed)} is missing')
    try:
        with open(config_path) as stream:
            config_data = json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f'{config_path} is not valid JSON: {error}') from error
    if not isinstance(config_data, dict):
        raise CheckpointError(f'{config_path}: expected a JSON object, got '
                              f'{type(config_data).__name__}')
    problem = relative_actions_problem(path, config_data)
    if problem:
        raise CheckpointError(problem)
    try:
        reader_context = safe_open(weights_path, 'pt')
    except Exception as error:        # safetensors raises its own error types for bad headers
        raise CheckpointError(f'{weights_path} is not a readable safetensors file: {error}') \
            from error
    with reader_context as reader:
        names = {_canonical(k): k for k in reader.keys() if not SKIPPED.search(k)}
        shapes = {k: tuple(reader.get_slice(v).get_shape()) for k, v in names.items()}
        config = config_from_lerobot(config_data, names, shapes)
        with torch.device('meta'):
            model = Pi05Model(config)
        expected = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
        missing = sorted(set(expected) - set(names))
        unexpected = sorted(set(names) - set(expected))
        wrong_shape = [f'{k}: checkpoint {shapes[k]}, model {expected[k][0]}'
                       for k in sorted(set(names) & set(expected)) if shapes[k] != expected[k][0]]
        if missing or unexpected or wrong_shape:
            raise CheckpointError(
                f'{weights_path} does not fit pi0.5 {config.language.depth}+'
                f'{config.expert.depth} layers: missing {missing[:10]} ({len(missing)}), '
                f'unexpected {unexpected[:10]} ({len(unexpected)}), wrong shapes '
                f'{wrong_shape[:10]}')
        state = {}
        for key, original in names.items():
            try:
                tensor = reader.get_tensor(original)
            except Exception as error:
                raise CheckpointError(f'{weights_path} is not a readable safetensors file: '
                                      f"tensor '{original}': {error}") from error
            if not tensor.is_floating_point():
                raise CheckpointError(f'{key} has dtype {tensor.dtype}; expected a float tensor')
            state[key] = tensor.to(device=device, dtype=torch.float32)
    model.load_state_dict(state, assign=True)
    tokenizer = os.path.join(path, TOKENIZER_FILE)
    return (model.eval(), config, read_normalizers(path, config_data),
            tokenizer if os.path.isfile(tokenizer) else None)


def save_lerobot_checkpoint(model: Pi05Model, path: str,
                            normalizers: Optional[Dict[str, Normalizer]] = None,
                            tokenizer_path: Optional[str] = None,
                            store_dtype: torch.dtype = torch.float32):
    """
    Write config.json, model.safetensors and the optional stats and tokenizer files.

    store_dtype float16 halves the file (the loader computes in fp32 either way).
    """
    config = model.config
    os.makedirs(path, exist_ok=True)
    features = {f'observation.images.{name}': {
        'type': 'VISUAL', 'shape': [3, config.vision.image_size, config.vision.image_size]}
        for name in config.cameras}
    features[STATE_KEY] = {'type': 'STATE', 'shape': [config.state_dim]}
    normalizers = normalizers or {}
    data = {
        'type': 'pi05',
        'input_features': features,
        'output_features': {ACTION_KEY: {'type': 'ACTION', 'shape': [config.action_dim]}},
        'paligemma_variant': 'gemma_2b', 'action_expert_variant': 'gemma_300m',
        'chunk_size': config.horizon, 'n_action_steps': config.horizon,
        'max_state_dim': config.max_state_dim, 'max_action_dim': config.max_action_dim,
        'num_inference_steps': config.num_steps, 'min_period': config.min_period,
        'max_period': config.max_period,
        'image_resolution': [config.vision.image_size, config.vision.image_size],
        'tokenizer_max_length': config.tokenizer_max_length,
        'dtype': str(store_dtype).replace('torch.', ''),
        'normalization_mapping': {
            'VISUAL': 'IDENTITY',
            'STATE': normalizers[STATE_KEY].mode if STATE_KEY in normalizers else 'QUANTILES',
            'ACTION': normalizers[ACTION_KEY].mode if ACTION_KEY in normalizers else 'QUANTILES'},
        'omegaq_pi05_config': config.to_dict(),
    }
    with open(os.path.join(path, 'config.json'), 'w') as stream:
        json.dump(data, stream, indent=1)
    state = {f'model.{k}': v.detach().cpu().to(store_dtype).contiguous()
             for k, v in model.state_dict().items()}
    save_file(state, os.path.join(path, 'model.safetensors'))
    stats = {f'{feature}.{name}': torch.from_numpy(value.copy())
             for feature, normalizer in normalizers.items()
             for name, value in normalizer.stats.items()}
    if stats:
        save_file(stats, os.path.join(path, 'policy_preprocessor_step_0_normalizer_processor'
                                            '.safetensors'))
    if tokenizer_path:
        shutil.copyfile(tokenizer_path, os.path.join(path, TOKENIZER_FILE))
    return path
