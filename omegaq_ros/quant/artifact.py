# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
The quantized artifact: a directory with omegaq.json and two safetensors files.

    omegaq.json             format + version, recipe, model fingerprint, calibration summary,
                            per-layer layout and statistics, sha256 and size of each file,
                            sha256 / dtype / shape of every tensor
    quantized.safetensors   per quantized linear L: L.weight_packed (uint8 [out, in/2], see
                            packing.py), L.weight_scale (fp16 [out, in/128]), with two-level
                            scales L.weight_scale_unit (fp16 [out]), L.bias (fp32),
                            L.rot_out (int8 [out/64, 64, 64]) + L.rot_out_scale (fp16
                            [out/64, 64]); and where L owns its input transform: L.smooth
                            (fp32), L.perm_in (int32 [in]), L.rot_in (int8 [in/64, 64, 64])
                            + L.rot_in_scale (fp16 [in/64, 64], one per column),
                            L.act_scale (fp16 [steps, in or in/64]). A linear whose layout
                            names `input_from` reads that layer's input transform.
    fp.safetensors          every other tensor of the model's state dict, as it was
A reader with these files can dequantize by hand (linear.py states the arithmetic). Nothing
is pickled. Loading refuses a wrong format version, a model whose structure differs from
the one quantized, any file or tensor whose checksum does not match, a file name that leads
out of the artifact directory, and a manifest whose own sha256 (`manifest_sha256`, over
every other field: normalization statistics, layouts, file and tensor checksums, ...) does
not match: an edited manifest is refused like an edited tensor. (The checksums catch damage
and edits, not a deliberate forgery: whoever can write the files can recompute them.)
"""

from datetime import datetime, timezone
import hashlib
import json
import os
import shutil
import tempfile

from omegaq_ros.quant.linear import link_shared_inputs, QuantLinear
from omegaq_ros.quant.recipe import Recipe
from omegaq_ros.quant.weights import scale_multiples
import safetensors
from safetensors.torch import load_file, save_file
import torch
from torch import nn

FORMAT = 'omegaq-artifact'
FORMAT_VERSION = 2
MANIFEST = 'omegaq.json'
QUANTIZED_FILE = 'quantized.safetensors'
FP_FILE = 'fp.safetensors'


class ArtifactError(RuntimeError):
    """The artifact is missing, corrupt, of another version, or made for another model."""


def tensor_sha256(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's raw little-endian bytes in C order."""
    raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
    return hashlib.sha256(raw.numpy().tobytes()).hexdigest()


def file_sha256(path: str) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_sha256(manifest: dict) -> str:
    """sha256 of a manifest's canonical JSON, every field but manifest_sha256 itself."""
    content = {key: value for key, value in manifest.items() if key != 'manifest_sha256'}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(',', ':'))
                          .encode()).hexdigest()


def is_artifact(path: str) -> bool:
    """Return whether path is an omegaq artifact directory (it holds a manifest)."""
    return os.path.isfile(os.path.join(path, MANIFEST))


def artifact_file(path: str, filename) -> str:
    """
    Return the path of a file the manifest names, confined to the artifact directory.

    The name must be a plain file name (no directories, no '..'), and the file, symbolic
    links resolved, must lie inside the artifact directory; otherwise ArtifactError.
    """
    if not isinstance(filename, str) or not filename or filename in ('.', '..') or \
            os.path.basename(filename) != filename or '\\' in filename:
        raise ArtifactError(f'{path}: the manifest names file {filename!r}; expected a plain '
                            'file name inside the artifact directory')
    file_path = os.path.join(path, filename)
    root = os.path.realpath(path)
    if os.path.commonpath([root, os.path.realpath(file_path)]) != root:
        raise ArtifactError(f'{file_path} leads outside the artifact directory (to '
                            f'{os.path.realpath(file_path)}); refused')
    return file_path


def model_fingerprint(model: nn.Module) -> str:
    """
    sha256 of the model's FP structure: class, and the name + shape of every tensor.

    A QuantLinear counts as the nn.Linear it replaced, so the fingerprint of a quantized
    model equals that of its FP skeleton.
    """
    entries = [type(model).__name__]
    for name, module in model.named_modules():
        prefix = f'{name}.' if name else ''
        if isinstance(module, QuantLinear):
            entries.append([prefix + 'weight', [module.out_features, module.in_features]])
            if module.bias is not None:
                entries.append([prefix + 'bias', [module.out_features]])
            continue
        if any(isinstance(parent, QuantLinear) for parent in _ancestors(model, name)):
            continue
        for key, tensor in list(module.named_parameters(recurse=False)) + [
                (k, b) for k, b in module.named_buffers(recurse=False)
                if b is not None and k not in module._non_persistent_buffers_set]:
            entries.append([prefix + key, list(tensor.shape)])
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def _ancestors(model, name):
    parts = name.split('.') if name else []
    return [model.get_submodule('.'.join(parts[:i])) for i in range(1, len(parts))]


def _split_state(model: nn.Module):
    quantized_names = {name for name, m in model.named_modules() if isinstance(m, QuantLinear)}
    quantized, fp = {}, {}
    for key, tensor in model.state_dict().items():
        owner = key.rpartition('.')[0]
        target = quantized if owner in quantized_names else fp
        target[key] = tensor.detach().cpu().contiguous().clone()
    return quantized, fp


def save_artifact(model: nn.Module, recipe: Recipe, path: str, extra_manifest: dict = None,
                  overwrite: bool = False, extra_files: dict = None) -> str:
    """
    Write the quantized model to directory `path` atomically; returns path.

    extra_files {name: source path} are copied in (e.g. a tokenizer) and checksummed too.
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f'artifact directory {path} already exists (overwrite=False)')
    summary = getattr(model, 'omegaq_summary', {})
    quantized, fp = _split_state(model)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix='.omegaq-', dir=parent)
    try:
        tensors, files = {}, {}
        for filename, state in ((QUANTIZED_FILE, quantized), (FP_FILE, fp)):
            file_path = os.path.join(staging, filename)
            save_file(state, file_path, metadata={'format': FORMAT})
            files[filename] = {'sha256': file_sha256(file_path),
                               'bytes': os.path.getsize(file_path)}
            tensors[filename] = {key: {'sha256': tensor_sha256(t), 'dtype': str(t.dtype),
                                       'shape': list(t.shape)} for key, t in state.items()}
        for filename, source in (extra_files or {}).items():
            if filename in (MANIFEST, QUANTIZED_FILE, FP_FILE) or os.path.basename(
                    filename) != filename:
                raise ValueError(f"extra file name '{filename}' is reserved or not a plain name")
            file_path = os.path.join(staging, filename)
            shutil.copyfile(source, file_path)
            files[filename] = {'sha256': file_sha256(file_path),
                               'bytes': os.path.getsize(file_path)}
        layers = {name: {'layout': m.layout(), 'stats': summary.get('layers', {}).get(name, {})}
                  for name, m in model.named_modules() if isinstance(m, QuantLinear)}
        manifest = {
            'format': FORMAT,
            'format_version': FORMAT_VERSION,
            'created': datetime.now(timezone.utc).isoformat(timespec='seconds'),
            'recipe': recipe.to_dict(),
            'model': {'class': type(model).__name__, 'fingerprint': model_fingerprint(model)},
            'calibration': summary.get('calibration', {}),
            'skipped': summary.get('skipped', {}),
            'layers': layers,
            'files': files,
            'tensors': tensors,
            'extra': extra_manifest or {},
        }
        manifest['manifest_sha256'] = manifest_sha256(manifest)
        with open(os.path.join(staging, MANIFEST), 'w') as stream:
            json.dump(manifest, stream, indent=1, sort_keys=True)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def read_manifest(path: str) -> dict:
    """
    Parse an artifact's omegaq.json: format, version, structure and its own sha256 checked.

    Every refusal is an ArtifactError that names the check which failed.
    """
    if not os.path.isfile(os.path.join(path, MANIFEST)):
        raise ArtifactError(f'{path} is not an omegaq artifact: {MANIFEST} is missing')
    manifest_path = artifact_file(path, MANIFEST)
    try:
        with open(manifest_path) as stream:
            manifest = json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f'{manifest_path} is not valid JSON: {error}') from error
    except OSError as error:
        raise ArtifactError(f'{manifest_path} cannot be read: {error}') from error
    if not isinstance(manifest, dict):
        raise ArtifactError(f'{manifest_path}: expected a JSON object, got a JSON '
                            f'{_json_kind(manifest)}')
    if manifest.get('format') != FORMAT:
        raise ArtifactError(f"{manifest_path}: format is '{manifest.get('format')}', "
                            f"expected '{FORMAT}'")
    version = manifest.get('format_version')
    if not isinstance(version, int) or isinstance(version, bool):
        raise ArtifactError(f'{manifest_path}: format_version is the JSON {_json_kind(version)} '
                            f'{json.dumps(version)}, expected the integer {FORMAT_VERSION}')
    if version != FORMAT_VERSION:
        raise ArtifactError(f'{manifest_path}: format version {version} is not supported '
                            f'(this omegaq_ros reads version {FORMAT_VERSION})')
    recorded = manifest.get('manifest_sha256')
    if not isinstance(recorded, str):
        raise ArtifactError(f'{manifest_path}: manifest_sha256 is missing (saved by an older '
                            'omegaq_ros, or removed); the manifest cannot be checked')
    if recorded != manifest_sha256(manifest):
        raise ArtifactError(f'{manifest_path}: manifest_sha256 does not match the manifest '
                            '(edited after saving: normalization, layouts, checksums or any '
                            'other field)')
    for key, kind in (('model', dict), ('files', dict), ('tensors', dict), ('layers', dict),
                      ('recipe', dict), ('extra', dict)):
        if not isinstance(manifest.get(key), kind):
            raise ArtifactError(f"{manifest_path}: '{key}' is missing or not a JSON object")
    return manifest


def _json_kind(value) -> str:
    names = {dict: 'object', list: 'list', str: 'string', bool: 'boolean', int: 'number',
             float: 'number', type(None): 'null'}
    return names.get(type(value), type(value).__name__)


def load_artifact(path: str, model_skeleton: nn.Module) -> nn.Module:
    """Load an artifact into an FP model of the same structure; returns the quantized model."""
    manifest = read_manifest(path)
    try:
        return _load_checked(path, manifest, model_skeleton)
    except (KeyError, TypeError) as error:
        raise ArtifactError(f'{path}: {MANIFEST} is malformed ({type(error).__name__}: '
                            f'{error})') from error


def _load_checked(path: str, manifest: dict, model_skeleton: nn.Module) -> nn.Module:
    expected = manifest['model']['fingerprint']
    actual = model_fingerprint(model_skeleton)
    if expected != actual:
        raise ArtifactError(
            f'{path} was made for a different model: fingerprint {expected[:12]}… '
            f"({manifest['model']['class']}), the given skeleton is {actual[:12]}… "
            f'({type(model_skeleton).__name__}); check the model config')
    state = {}
    for filename, info in manifest['files'].items():
        file_path = artifact_file(path, filename)
        if not os.path.isfile(file_path):
            raise ArtifactError(f'{path}: {filename} is missing')
        size = os.path.getsize(file_path)
        if size != info['bytes']:
            raise ArtifactError(f'{file_path} has {size} bytes, the manifest says '
                                f"{info['bytes']} (truncated or replaced)")
        if file_sha256(file_path) != info['sha256']:
            raise ArtifactError(f'{file_path}: sha256 does not match the manifest (corrupt or '
                                'modified)')
        if filename not in manifest['tensors']:
            continue
        try:
            tensors = load_file(file_path)
        except (safetensors.SafetensorError, OSError, ValueError) as error:
            raise ArtifactError(f'{file_path} is not a readable safetensors file: {error}') \
                from error
        listed = manifest['tensors'][filename]
        if set(tensors) != set(listed):
            raise ArtifactError(f'{file_path}: tensors differ from the manifest: missing '
                                f'{sorted(set(listed) - set(tensors))}, unexpected '
                                f'{sorted(set(tensors) - set(listed))}')
        for key, tensor in tensors.items():
            if tensor_sha256(tensor) != listed[key]['sha256']:
                raise ArtifactError(f"{file_path}: tensor '{key}' fails its sha256 check")
        state.update(tensors)

    for name, info in manifest['layers'].items():
        try:
            linear = model_skeleton.get_submodule(name)
        except AttributeError as error:
            raise ArtifactError(f"{path}: quantized layer '{name}' is not in the model") \
                from error
        if not isinstance(linear, nn.Linear):
            raise ArtifactError(f"{path}: '{name}' is a {type(linear).__name__}, "
                                'expected nn.Linear')
        layer = QuantLinear(name=name, **info['layout'])
        parent_name, _, child = name.rpartition('.')
        parent = model_skeleton.get_submodule(parent_name) if parent_name else model_skeleton
        setattr(parent, child, layer)
    # assign=True also fills skeletons built on the meta device (no double allocation).
    result = model_skeleton.load_state_dict(state, strict=False, assign=True)
    if result.missing_keys or result.unexpected_keys:
        raise ArtifactError(f'{path}: state does not fit the model: missing '
                            f'{result.missing_keys[:8]}, unexpected {result.unexpected_keys[:8]}')
    try:
        link_shared_inputs(model_skeleton)
        for module in model_skeleton.modules():
            if isinstance(module, QuantLinear) and module.weight_scale_unit is not None:
                try:
                    scale_multiples(module.weight_scale, module.weight_scale_unit)
                except ValueError as error:
                    raise ValueError(f"layer '{module.name}': {error}") from None
    except ValueError as error:
        raise ArtifactError(f'{path}: {error}') from error
    model_skeleton.omegaq_summary = {
        'recipe': manifest['recipe'], 'calibration': manifest['calibration'],
        'layers': {n: i['stats'] for n, i in manifest['layers'].items()},
        'skipped': manifest.get('skipped', {}), 'extra': manifest.get('extra', {})}
    return model_skeleton
