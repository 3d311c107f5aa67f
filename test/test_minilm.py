# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The proof on real trained weights: our MiniLM forward is right, and Omega beats RTN."""

import copy
import os
import subprocess
import sys

from omegaq_ros.minilm import model as minilm
from omegaq_ros.quant import load_artifact, quantize, Recipe, save_artifact
import pytest
import torch


def test_forward_matches_transformers_bert(minilm_bundle):
    transformers = pytest.importorskip('transformers')
    model, _, _, held_out = minilm_bundle
    bert = transformers.BertModel.from_pretrained(minilm.model_dir()).eval()
    with torch.no_grad():
        hidden = bert(**held_out).last_hidden_state
        mask = held_out['attention_mask'].unsqueeze(-1).float()
        pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        ours = model(**held_out)
    assert torch.allclose(ours, pooled, atol=1e-5)


def test_trained_weights_have_the_outliers_the_method_targets(minilm_bundle):
    model, _, calibration, _ = minilm_bundle
    probe = quantize(copy.deepcopy(model), calibration,
                     Recipe.preset('rtn', include=(r'layer\.0\.output\.dense',)))
    stats = probe.omegaq_summary['layers']['encoder.layer.0.output.dense']
    # L2 channel norms over tokens; the per-token absmax ratio is larger still (~58x).
    assert stats['act_chnorm_ratio_before']['max_median'] > 10


@pytest.fixture(scope='module')
def embeddings(minilm_bundle):
    model, _, calibration, held_out = minilm_bundle
    with torch.no_grad():
        reference = model(**held_out)
    out = {}
    for method in ('rtn', 'omega', 'omega-dynamic'):
        quantized = quantize(copy.deepcopy(model), calibration, Recipe.preset(method))
        with torch.no_grad():
            out[method] = (quantized, torch.nn.functional.cosine_similarity(
                quantized(**held_out), reference, dim=-1).mean().item())
    return out


def test_omega_beats_rtn_on_held_out_embedding_cosine(embeddings):
    assert embeddings['omega'][1] > embeddings['rtn'][1] + 0.05
    assert embeddings['omega-dynamic'][1] > 0.95


def test_minilm_artifact_round_trip(embeddings, minilm_bundle, tmp_path):
    quantized = embeddings['omega'][0]
    _, _, _, held_out = minilm_bundle
    path = save_artifact(quantized, Recipe.preset('omega'), str(tmp_path / 'minilm_w4a4'))
    loaded = load_artifact(path, minilm.MiniLM())
    with torch.no_grad():
        assert torch.equal(loaded(**held_out), quantized(**held_out))


def test_table_command_writes_table_and_reports(tmp_path):
    out = tmp_path / 'report'
    subprocess.run([sys.executable, '-m', 'omegaq_ros.minilm.table', '--methods',
                    'fp,omega-dynamic', '--out', str(out)], check=True)
    table = (out / 'table.md').read_text()
    assert '| omega-dynamic |' in table and '| fp | 1.0000 |' in table
    for name in ('report.json', 'ratios.png', 'error.png'):
        assert os.path.getsize(out / 'omega-dynamic' / name) > 0
