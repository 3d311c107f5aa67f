# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Artifacts: bit-exact round trip, and every refusal the format promises."""

import json
import os

from omegaq_ros.quant import ArtifactError, load_artifact, quantize, Recipe, save_artifact
from omegaq_ros.quant.artifact import file_sha256, manifest_sha256
import pytest
from safetensors.torch import load_file, save_file
import torch
from toy_models import toy_batches, ToyDenoiser


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    model = quantize(ToyDenoiser(), toy_batches(), Recipe.preset('omega'))
    path = save_artifact(model, Recipe.preset('omega'), str(tmp_path_factory.mktemp('a') / 'art'),
                         extra_manifest={'note': 'toy'})
    return model, path


def fresh_copy(path, tmp_path):
    target = tmp_path / 'copy'
    os.makedirs(target)
    for name in os.listdir(path):
        with open(os.path.join(path, name), 'rb') as src, open(target / name, 'wb') as dst:
            dst.write(src.read())
    return str(target)


def test_round_trip_is_bit_exact(saved):
    model, path = saved
    loaded = load_artifact(path, ToyDenoiser(seed=5))
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    x = toy_batches(1, seed=9)[0]
    with torch.no_grad():
        assert torch.equal(model(*x), loaded(*x))
    assert loaded.omegaq_summary['extra'] == {'note': 'toy'}


def test_only_json_and_safetensors_no_pickle(saved):
    _, path = saved
    assert sorted(os.listdir(path)) == ['fp.safetensors', 'omegaq.json', 'quantized.safetensors']
    manifest = json.load(open(os.path.join(path, 'omegaq.json')))
    assert manifest['format_version'] == 2
    assert manifest['recipe']['name'] == 'omega'
    assert manifest['layers']['head_in']['layout']['table_rows'] == 4
    assert 'head_in.weight_packed' in manifest['tensors']['quantized.safetensors']


def test_tampered_tensor_is_refused(saved, tmp_path):
    _, path = saved
    copy_path = fresh_copy(path, tmp_path)
    file_path = os.path.join(copy_path, 'quantized.safetensors')
    tensors = load_file(file_path)
    tensors['head_in.weight_scale'][0, 0] += 1.0
    save_file(tensors, file_path)
    manifest_path = os.path.join(copy_path, 'omegaq.json')
    manifest = json.load(open(manifest_path))
    # Even with the file-level checksum updated, the per-tensor checksum catches it.
    manifest['files']['quantized.safetensors'] = {'sha256': file_sha256(file_path),
                                                  'bytes': os.path.getsize(file_path)}
    manifest['manifest_sha256'] = manifest_sha256(manifest)   # and the manifest's own too
    json.dump(manifest, open(manifest_path, 'w'))
    with pytest.raises(ArtifactError, match="tensor 'head_in.weight_scale' fails its sha256"):
        load_artifact(copy_path, ToyDenoiser())


def test_flipped_byte_is_refused(saved, tmp_path):
    _, path = saved
    copy_path = fresh_copy(path, tmp_path)
    file_path = os.path.join(copy_path, 'fp.safetensors')
    data = bytearray(open(file_path, 'rb').read())
    data[-3] ^= 0xFF
    open(file_path, 'wb').write(bytes(data))
    with pytest.raises(ArtifactError, match='sha256 does not match'):
        load_artifact(copy_path, ToyDenoiser())


def test_truncated_file_is_refused(saved, tmp_path):
    _, path = saved
    copy_path = fresh_copy(path, tmp_path)
    file_path = os.path.join(copy_path, 'quantized.safetensors')
    data = open(file_path, 'rb').read()
    open(file_path, 'wb').write(data[:len(data) // 2])
    with pytest.raises(ArtifactError, match='truncated'):
        load_artifact(copy_path, ToyDenoiser())


def test_wrong_version_is_refused(saved, tmp_path):
    _, path = saved
    copy_path = fresh_copy(path, tmp_path)
    manifest_path = os.path.join(copy_path, 'omegaq.json')
    manifest = json.load(open(manifest_path))
    manifest['format_version'] = 99
    json.dump(manifest, open(manifest_path, 'w'))
    with pytest.raises(ArtifactError, match='format version 99 is not supported'):
        load_artifact(copy_path, ToyDenoiser())


def test_mismatched_model_is_refused(saved):
    _, path = saved
    with pytest.raises(ArtifactError, match='made for a different model'):
        load_artifact(path, ToyDenoiser(width=64))


def test_missing_or_garbled_manifest_is_refused(saved, tmp_path):
    _, path = saved
    with pytest.raises(ArtifactError, match='omegaq.json is missing'):
        load_artifact(str(tmp_path), ToyDenoiser())
    copy_path = fresh_copy(path, tmp_path)
    open(os.path.join(copy_path, 'omegaq.json'), 'w').write('{not json')
    with pytest.raises(ArtifactError, match='not valid JSON'):
        load_artifact(copy_path, ToyDenoiser())


def test_existing_directory_is_not_overwritten_by_default(saved):
    model, path = saved
    with pytest.raises(FileExistsError):
        save_artifact(model, Recipe.preset('omega'), path)


def test_failed_save_leaves_nothing_behind(tmp_path):
    model = quantize(ToyDenoiser(), toy_batches(2), Recipe.preset('omega-dynamic'))
    target = tmp_path / 'art'
    # The tensors are written first; a manifest that cannot be serialized fails afterwards.
    with pytest.raises(TypeError):
        save_artifact(model, Recipe.preset('omega-dynamic'), str(target),
                      extra_manifest={'not json': {1, 2}})
    assert os.listdir(tmp_path) == []


def edit_manifest(path, change, rehash=False):
    """Apply change(manifest) to an artifact's omegaq.json (optionally re-hashing it)."""
    manifest_path = os.path.join(path, 'omegaq.json')
    manifest = json.load(open(manifest_path))
    change(manifest)
    if rehash:
        manifest['manifest_sha256'] = manifest_sha256(manifest)
    json.dump(manifest, open(manifest_path, 'w'))


def test_edited_manifest_fields_are_refused(saved, tmp_path):
    """Normalization statistics (in extra), layouts, anything: the manifest's sha256 fails."""
    _, path = saved
    copy_path = fresh_copy(path, tmp_path)
    load_artifact(copy_path, ToyDenoiser())                    # untouched: loads
    edit_manifest(copy_path, lambda m: m['extra'].update(note='edited'))
    with pytest.raises(ArtifactError, match='manifest_sha256 does not match the manifest'):
        load_artifact(copy_path, ToyDenoiser())
    edit_manifest(copy_path, lambda m: m.pop('manifest_sha256'))
    with pytest.raises(ArtifactError, match='manifest_sha256 is missing'):
        load_artifact(copy_path, ToyDenoiser())


@pytest.mark.parametrize('name', ['../outside.safetensors', '/etc/passwd', 'sub/x', '..'])
def test_file_names_leading_out_of_the_artifact_are_refused(saved, tmp_path, name):
    _, path = saved
    copy_path = fresh_copy(path, tmp_path)
    (tmp_path / 'outside.safetensors').write_bytes(b'x')
    edit_manifest(copy_path, lambda m: m['files'].update(
        {name: {'sha256': file_sha256(str(tmp_path / 'outside.safetensors')), 'bytes': 1}}),
        rehash=True)
    with pytest.raises(ArtifactError, match='expected a plain file name inside the artifact'):
        load_artifact(copy_path, ToyDenoiser())


def test_symlinks_out_of_the_artifact_are_refused(saved, tmp_path):
    _, path = saved
    copy_path = fresh_copy(path, tmp_path)
    outside = tmp_path / 'elsewhere.safetensors'
    os.replace(os.path.join(copy_path, 'fp.safetensors'), outside)
    os.symlink(outside, os.path.join(copy_path, 'fp.safetensors'))
    with pytest.raises(ArtifactError, match='leads outside the artifact directory'):
        load_artifact(copy_path, ToyDenoiser())


@pytest.mark.parametrize('content, message', [
    ('[1, 2]', 'expected a JSON object, got a JSON list'),
    ('"omegaq"', 'expected a JSON object, got a JSON string'),
])
def test_manifest_that_is_not_an_object_is_refused(saved, tmp_path, content, message):
    _, path = saved
    copy_path = fresh_copy(path, tmp_path)
    open(os.path.join(copy_path, 'omegaq.json'), 'w').write(content)
    with pytest.raises(ArtifactError, match=message):
        load_artifact(copy_path, ToyDenoiser())


def test_string_format_version_says_what_arrived(saved, tmp_path):
    _, path = saved
    copy_path = fresh_copy(path, tmp_path)
    edit_manifest(copy_path, lambda m: m.update(format_version='2'), rehash=True)
    with pytest.raises(ArtifactError, match='format_version is the JSON string "2", expected '
                       'the integer 2'):
        load_artifact(copy_path, ToyDenoiser())


def test_two_level_weight_scales_round_trip_and_bad_multiples_are_refused(tmp_path):
    recipe = Recipe.preset('omega-dynamic', weight_scales='two_level')
    model = quantize(ToyDenoiser(), toy_batches(), recipe)
    path = save_artifact(model, recipe, str(tmp_path / 'art'))
    loaded = load_artifact(path, ToyDenoiser(seed=5))
    layer = loaded.head_in
    assert layer.weight_scale_unit is not None and layer.layout()['has_scale_unit']
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    # Scales that are not multiples of their unit, with every checksum redone: refused.
    file_path = os.path.join(path, 'quantized.safetensors')
    tensors = load_file(file_path)
    tensors['head_in.weight_scale'] = tensors['head_in.weight_scale'] * 1.5
    save_file(tensors, file_path)
    manifest_path = os.path.join(path, 'omegaq.json')
    manifest = json.load(open(manifest_path))
    listed = manifest['tensors']['quantized.safetensors']
    from omegaq_ros.quant.artifact import tensor_sha256
    listed['head_in.weight_scale']['sha256'] = tensor_sha256(tensors['head_in.weight_scale'])
    manifest['files']['quantized.safetensors']['sha256'] = file_sha256(file_path)
    manifest['files']['quantized.safetensors']['bytes'] = os.path.getsize(file_path)
    manifest['manifest_sha256'] = manifest_sha256(manifest)
    json.dump(manifest, open(manifest_path, 'w'))
    with pytest.raises(ArtifactError, match='head_in.*not multiples'):
        load_artifact(path, ToyDenoiser(seed=5))
