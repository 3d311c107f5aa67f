# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The fixed-shape chunk path (CUDA graphs on GPU) and reduced-precision towers."""

import os

import numpy as np
from omegaq_ros.policy.graphed import StaticChunkSampler
from omegaq_ros.policy.pi05_processing import prepare_images
from omegaq_ros.policy.pi05_runtime import Pi05Policy
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT = os.path.join(ROOT, 'models', 'pi05_small', 'checkpoint')
ARTIFACT = os.path.join(ROOT, 'models', 'pi05_small_w4a4')


def observation(policy, seed):
    """Model inputs for one random observation of the bundled policy's shapes."""
    rng = np.random.default_rng(seed)
    config = policy.config
    images = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in config.cameras]
    tokens, mask = policy.tokenizer(f'Task: lift the red cube {seed};\nAction: ')
    image_list, masks = prepare_images(images, [True] * 3, config.vision.image_size,
                                       policy.device)
    noise = rng.standard_normal((1, config.horizon, 32)).astype(np.float32)
    return (image_list, masks, torch.from_numpy(tokens)[None].to(policy.device),
            torch.from_numpy(mask)[None].to(policy.device),
            torch.from_numpy(noise).to(policy.device))


@pytest.mark.parametrize('path', [CHECKPOINT, ARTIFACT])
def test_static_buffers_give_the_eager_chunk_for_every_new_observation(path):
    policy = Pi05Policy.load(path)
    first = observation(policy, 0)
    sampler = StaticChunkSampler(policy.model, first, capture=False)
    for seed in (1, 2):
        inputs = observation(policy, seed)
        with torch.no_grad():
            eager = policy.model.sample_actions(*inputs)
        chunk = sampler(inputs)
        assert torch.equal(chunk, eager)
    with pytest.raises(ValueError, match='static input of shape'):
        sampler((*first[:4], torch.zeros(1, 7, 32)))


def test_bfloat16_towers_stay_close_to_float32():
    policy = Pi05Policy.load(CHECKPOINT)
    half = Pi05Policy.load(CHECKPOINT, dtype='bfloat16')
    assert half.model.vlm.language_model.layers[0].self_attn.q_proj.weight.dtype == \
        torch.bfloat16
    assert half.model.action_in_proj.weight.dtype == torch.float32
    inputs = observation(policy, 3)
    with torch.no_grad():
        reference = policy.model.sample_actions(*inputs)
        reduced = half.model.sample_actions(*inputs)
    assert reduced.dtype == torch.float32 and torch.isfinite(reduced).all()
    assert float((reduced - reference).abs().max()) < 0.05


def test_warm_up_runs_one_chunk_and_refuses_a_policy_that_puts_out_nan():
    policy = Pi05Policy.load(CHECKPOINT)
    assert policy.warm_up('lift the red cube') > 0.0
    with torch.no_grad():
        policy.model.action_out_proj.bias[2] = float('nan')     # a fault inside the model
    with pytest.raises(ValueError, match='NaN/inf actions on a synthetic observation'):
        policy.warm_up()


def test_wrong_options_are_refused():
    with pytest.raises(ValueError, match='dtype must be one of'):
        Pi05Policy.load(CHECKPOINT, dtype='int8')
    with pytest.raises(ValueError, match="backend must be 'reference' or 'triton'"):
        Pi05Policy.load(ARTIFACT, backend='cuda')
    with pytest.raises(ValueError, match='cuda_graph needs a CUDA device'):
        Pi05Policy.load(CHECKPOINT, cuda_graph=True)
    with pytest.raises(ValueError, match="backend 'triton' needs a CUDA device"):
        Pi05Policy.load(ARTIFACT, backend='triton')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graph capture needs CUDA')
@pytest.mark.parametrize('path,backend', [(CHECKPOINT, 'reference'), (ARTIFACT, 'reference'),
                                          (ARTIFACT, 'triton')])
def test_cuda_graph_replay_matches_eager_on_new_observations(path, backend):
    eager = Pi05Policy.load(path, 'cuda', backend=backend)
    graphed = Pi05Policy.load(path, 'cuda', backend=backend, cuda_graph=True)
    rng = np.random.default_rng(5)
    state = rng.uniform(-0.3, 0.3, 14).astype(np.float32)
    for seed in range(3):
        images = [np.random.default_rng(seed).integers(0, 256, (96, 96, 3), dtype=np.uint8)
                  for _ in range(3)]
        noise = np.random.default_rng(seed).standard_normal((20, 32)).astype(np.float32)
        a = eager.predict(images, state, 'lift the red cube', noise=noise, normalized=True)
        b = graphed.predict(images, state, 'lift the red cube', noise=noise, normalized=True)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def _tensors(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [t for item in value for t in _tensors(item)]


def test_samplers_hold_the_step_modulations_their_graphs_read():
    """Samplers of two prompt lengths share one table; a table the model drops stays theirs."""
    policy = Pi05Policy.load(CHECKPOINT)
    model = policy.model
    first = StaticChunkSampler(model, observation(policy, 0), capture=False)
    images, masks, tokens, mask, noise = observation(policy, 1)
    longer = (images, masks, torch.cat([tokens, tokens], 1), torch.cat([mask, mask], 1), noise)
    second = StaticChunkSampler(model, longer, capture=False)
    assert second.modulations is first.modulations, 'the same steps made a second table'
    kept = [t.data_ptr() for t in _tensors(first.modulations)]
    model.eval()                          # drops the model's table (weights may have changed)
    third = StaticChunkSampler(model, observation(policy, 2), capture=False)
    assert third.modulations is not first.modulations
    assert [t.data_ptr() for t in _tensors(first.modulations)] == kept
    for a, b in zip(_tensors(first.modulations), _tensors(third.modulations)):
        assert torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graph capture needs CUDA')
@pytest.mark.parametrize('backend', ['reference', 'triton'])
def test_cuda_graphs_of_two_prompt_lengths_take_turns(backend):
    """
    Going back to an earlier prompt length's graphs gives the eager chunk.

    They once read a step-modulation table that the next length's capture had freed: the
    closed loop on the GPU got NaN actions (the prompt holds the state, so its length moves).
    """
    eager = Pi05Policy.load(ARTIFACT, 'cuda', backend=backend)
    graphed = Pi05Policy.load(ARTIFACT, 'cuda', backend=backend, cuda_graph=True)
    rng = np.random.default_rng(6)
    state = rng.uniform(-0.3, 0.3, 14).astype(np.float32)
    images = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(3)]
    noise = rng.standard_normal((20, 32)).astype(np.float32)
    for _ in range(2):
        for instruction in ('lift', 'hand the green block from the left arm to the right arm '
                            'and then put it back down on the table where it was before'):
            expected = eager.predict(images, state, instruction, noise=noise, normalized=True)
            # Memory freed behind a graph's back is handed out again: fill it with NaN.
            junk = [torch.full((n,), float('nan'), device='cuda')
                    for n in range(128, 65536, 96)]
            del junk
            chunk = graphed.predict(images, state, instruction, noise=noise, normalized=True)
            np.testing.assert_allclose(chunk, expected, rtol=0, atol=1e-5)
    assert len(graphed._samplers) == 2


def test_trailing_prompt_padding_is_cut_and_the_chunk_stays_the_same():
    from omegaq_ros.policy.pi05_runtime import PROMPT_BUCKET, trim_padding
    policy = Pi05Policy.load(CHECKPOINT)
    images, masks, tokens, mask, noise = observation(policy, 4)
    real = int(mask.sum())
    assert tokens.shape[1] == policy.config.tokenizer_max_length > real
    short_tokens, short_mask = trim_padding(tokens[0].numpy(), mask[0].numpy())
    assert len(short_tokens) % PROMPT_BUCKET == 0 and real <= len(short_tokens) < real + 16
    assert short_mask[:real].all() and not short_mask[real:].any()
    with torch.no_grad():
        full = policy.model.sample_actions(images, masks, tokens, mask, noise)
        cut = policy.model.sample_actions(images, masks, torch.from_numpy(short_tokens)[None],
                                          torch.from_numpy(short_mask)[None], noise)
    assert float((full - cut).abs().max()) < 1e-5
    assert len(trim_padding(np.arange(5), np.zeros(5, dtype=bool))[0]) == 5


def test_fused_pointwise_gives_the_eager_chunk():
    policy = Pi05Policy.load(CHECKPOINT)
    fused = Pi05Policy.load(CHECKPOINT, fused_pointwise=True)
    assert fused.model.fused_pointwise and not policy.model.fused_pointwise
    inputs = observation(policy, 5)
    with torch.no_grad():
        eager = policy.model.sample_actions(*inputs)
        compiled = fused.model.sample_actions(*inputs)
    assert float((compiled - eager).abs().max()) < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason='the GELU epilogue needs CUDA')
@pytest.mark.parametrize('dtype', (torch.float32, torch.bfloat16))
def test_vision_gelu_in_the_gemm_epilogue_matches_the_eager_mlp(dtype):
    """The fused pipeline's fc1 + GELU(tanh) as one cuBLASLt GEMM: the eager two steps' values."""
    from omegaq_ros.policy import pointwise
    g = torch.Generator(device='cuda').manual_seed(5)
    x, weight = (torch.randn(3, 256, 1152, device='cuda', generator=g).to(dtype),
                 (torch.randn(4304, 1152, device='cuda', generator=g) / 34).to(dtype))
    bias = torch.randn(4304, device='cuda', generator=g).to(dtype)
    eager = pointwise.EAGER.linear_gelu(x, weight, bias).float()
    fused = pointwise.compiled().linear_gelu(x, weight, bias)
    assert fused.shape == eager.shape and fused.dtype == dtype
    tolerance = 1e-4 if dtype == torch.float32 else 2e-2
    assert float((fused.float() - eager).abs().max()) < tolerance * float(eager.abs().max())


def test_policy_options_pick_the_fast_path_only_where_cuda_is():
    from omegaq_ros.policy.runtime import policy_options
    cpu = policy_options('cpu')
    assert (cpu['dtype'], cpu['backend'], cpu['cuda_graph'], cpu['fused_pointwise']) == (
        'float32', 'reference', False, False)
    assert cpu['text'] == 'CPU path on cpu: float32 towers, reference W4A4 backend, eager'
    chosen = policy_options('cpu', dtype='bfloat16', backend='triton')
    assert (chosen['dtype'], chosen['backend']) == ('bfloat16', 'triton')
    auto = policy_options()
    assert auto['device'] == ('cuda' if torch.cuda.is_available() else 'cpu')
    assert auto['text'].startswith('GPU path' if torch.cuda.is_available() else 'CPU path')
    if torch.cuda.is_available():
        assert (auto['dtype'], auto['cuda_graph'], auto['fused_pointwise']) == (
            'bfloat16', True, True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='the fast path needs CUDA')
def test_the_fast_gpu_path_stays_close_to_the_float32_reference():
    """
    bfloat16 towers, triton kernels, fused pointwise work and CUDA graphs, all at once.

    The FP checkpoint moves by bfloat16 rounding (a few hundredths, as on the CPU above). The
    W4A4 artifact is a step function of its input, so bfloat16 rounding flips some codes and
    the flips cascade: its bound is the size of quantization's own effect on the chunk.
    """
    from omegaq_ros.policy.runtime import policy_options
    options = policy_options('cuda')
    assert options['backend'] == 'triton' and options['fused_pointwise']
    options.pop('text')
    rng = np.random.default_rng(8)
    state = rng.uniform(-0.3, 0.3, 14).astype(np.float32)
    cases = []
    for seed in range(3):
        images = [np.random.default_rng(seed).integers(0, 256, (96, 96, 3), dtype=np.uint8)
                  for _ in range(3)]
        noise = np.random.default_rng(seed).standard_normal((20, 32)).astype(np.float32)
        cases.append((images, noise))
    chunks = {}
    for name, path in (('fp', CHECKPOINT), ('w4a4', ARTIFACT)):
        for speed, kwargs in (('reference', {'device': 'cuda'}), ('fast', options)):
            policy = Pi05Policy.load(path, **kwargs)
            chunks[name, speed] = np.stack([
                policy.predict(images, state, 'lift the red cube', noise=noise, normalized=True)
                for images, noise in cases])
    assert all(np.isfinite(c).all() for c in chunks.values())
    assert float(np.abs(chunks['fp', 'fast'] - chunks['fp', 'reference']).max()) < 0.1
    quantization = float(np.abs(chunks['w4a4', 'reference'] - chunks['fp', 'reference']).mean())
    fast = float(np.abs(chunks['w4a4', 'fast'] - chunks['w4a4', 'reference']).mean())
    print(f'mean |fast - reference| W4A4 {fast:.3e}, quantization itself {quantization:.3e}')
    assert fast < 2 * quantization


@pytest.mark.skipif(not torch.cuda.is_available(), reason='the CPU path compiles nothing')
def test_compiled_pointwise_kernels_are_the_cuda_default_and_can_be_turned_off():
    from omegaq_ros.policy.runtime import policy_options
    fast = policy_options('cuda')
    assert fast['fused_pointwise'] is True and 'fused pointwise' in fast['text']
    plain = policy_options('cuda', fused_pointwise=False)
    assert plain['fused_pointwise'] is False and plain['cuda_graph'] is True
    assert 'fused pointwise' not in plain['text'] and 'CUDA graphs' in plain['text']
