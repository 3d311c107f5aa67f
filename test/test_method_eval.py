# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""omegaq-eval end to end on the bundled policy: real MuJoCo episodes, real quantization."""

import json
import os

from omegaq_ros.policy.recipes import method_recipe
from omegaq_ros.sim.method_eval import (EpisodeResult, main, markdown, plot, split_method,
                                        summarize, wilson_interval)
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT = os.path.join(ROOT, 'models', 'pi05_small', 'checkpoint')


def test_method_labels_name_their_backend():
    assert split_method('omega') == ('omega', 'reference')
    assert split_method('omega-dynamic@triton') == ('omega-dynamic', 'triton')


def test_methods_may_change_recipe_fields():
    recipe = method_recipe('omega-group+act_clip=mse+act_percentile=98')
    assert (recipe.name, recipe.act_mode, recipe.act_clip, recipe.act_percentile) == (
        'omega-group', 'static_group', 'mse', 98)
    assert recipe.include == method_recipe('omega').include      # the pi0.5 scope
    assert method_recipe('omega') == method_recipe('omega+zigzag=true')
    with pytest.raises(ValueError, match="'act_clip'"):
        method_recipe('omega-group+act_clip=max')


def test_wilson_interval_holds_the_rate():
    low, high = wilson_interval(43, 50)
    assert low < 0.86 < high and 0.7 < low and high < 0.95
    assert wilson_interval(0, 0) == (0.0, 0.0)
    # At a rate of 0 or 1 the bounds must hold the rate exactly (6/6 gave 0.9999999999999999).
    for total in range(1, 60):
        for wins in (0, total):
            low, high = wilson_interval(wins, total)
            assert low <= wins / total <= high, (wins, total, low, high)


def test_plot_of_a_perfect_method_after_two_episodes_per_task(tmp_path):
    """--episodes 2 on 3 tasks: 6/6 successes must plot (it raised on negative yerr)."""
    results = [EpisodeResult(method, task, seed, method == 'fp', 100, 5.0)
               for method in ('fp', 'rtn') for task in ('lift', 'bin', 'handover')
               for seed in (0, 1)]
    rows = summarize(results, {}, ['fp', 'rtn'], ('lift', 'bin', 'handover'))
    assert '100% [61, 100] (n=6)' in markdown(rows, ('lift', 'bin', 'handover'))
    plot(rows, str(tmp_path / 'success.png'))
    assert (tmp_path / 'success.png').stat().st_size > 0


@pytest.mark.parametrize('methods,message', [
    ('omega@fast', 'unknown backends'),
    ('omega-fancy', "unknown method 'omega-fancy'"),
    ('omega-group+act_clamp=mse', "'act_clamp=mse' in 'omega-group+act_clamp=mse'"),
    ('omega-dynamic@triton', 'needs --device cuda'),
])
def test_bad_methods_are_refused_before_any_work(methods, message, capsys, monkeypatch):
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(['--policy', CHECKPOINT, '--methods', methods])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_paired_closed_loop_table(tmp_path):
    """FP and one method under two labels: same artifact and backend give identical episodes."""
    out = tmp_path / 'eval'
    code = main(['--policy', CHECKPOINT, '--methods', 'fp,omega-dynamic,omega-dynamic@reference',
                 '--episodes', '1', '--tasks', 'lift', '--workers', '1',
                 '--calibration-seeds', '1000:1002', '--held-out-seeds', '2000:2001',
                 '--out', str(out)])
    assert code == 0
    assert (out / 'table.md').read_text().count('\n| ') == 3   # one row per method
    report = json.loads((out / 'results.json').read_text())
    rows = {row['method']: row for row in report['rows'] if row['task'] == 'average'}
    assert list(rows) == ['fp', 'omega-dynamic', 'omega-dynamic@reference']
    assert all(row['episodes'] == 1 and row['ci_low'] <= row['success'] <= row['ci_high']
               for row in rows.values())
    assert rows['fp']['open_loop_error'] == 0.0
    assert rows['omega-dynamic']['open_loop_error'] > 0.0
    assert rows['omega-dynamic']['open_loop_error'] == \
        rows['omega-dynamic@reference']['open_loop_error']
    episodes = {}
    for episode in report['episodes']:
        episodes.setdefault(episode['method'], []).append(
            (episode['task'], episode['seed'], episode['success'], episode['steps']))
    assert episodes['omega-dynamic'] == episodes['omega-dynamic@reference']
    assert {e[1] for e in episodes['fp']} == {100000}


def test_an_episode_ends_failed_on_nan_actions_and_the_table_says_so():
    """A policy that puts out NaN ends its episode at once, counted as a failure."""
    import torch
    from omegaq_ros.policy.registry import load_policy
    from omegaq_ros.sim.method_eval import run_episode
    policy = load_policy(CHECKPOINT)
    with torch.no_grad():
        policy.model.action_out_proj.bias.fill_(float('nan'))     # a fault inside the model
    result = run_episode(policy, 'fp', 'lift', 100000, 10)
    assert result.nonfinite and not result.success and result.steps == 0
    healthy = EpisodeResult('fp', 'lift', 100001, True, 40, 1.0)
    rows = summarize([result, healthy], {}, ['fp'], ['lift'])
    assert next(r for r in rows if r['task'] == 'average')['nonfinite'] == 1
    table = markdown(rows, ['lift'])
    assert '1 of 2 episodes of fp ended on a chunk with NaN/inf actions' in table


def test_zero_episodes_measure_the_open_loop_error_alone(tmp_path):
    """--episodes 0: no closed loop; the table shows the open-loop error and no success rate."""
    out = tmp_path / 'open_loop'
    # Without 'fp' among the methods the error is still against the FP checkpoint.
    assert main(['--policy', CHECKPOINT, '--methods', 'rtn', '--episodes', '0',
                 '--tasks', 'lift', '--workers', '1', '--calibration-seeds', '1000:1002',
                 '--held-out-seeds', '2000:2001', '--out', str(out)]) == 0
    report = json.loads((out / 'results.json').read_text())
    assert report['episodes'] == []
    rows = {row['method']: row for row in report['rows'] if row['task'] == 'average'}
    assert list(rows) == ['rtn'] and rows['rtn']['open_loop_error'] > 0.0
    table = (out / 'table.md').read_text()
    assert '| rtn | – | – | ' in table and '%' not in table


def test_quantize_cli_reads_the_same_method_syntax():
    from omegaq_ros.policy.recipes import load_recipe, RecipeError
    assert load_recipe('omega-group+act_clip=mse') == method_recipe('omega-group+act_clip=mse')
    with pytest.raises(RecipeError, match='expected a preset'):
        load_recipe('no-such-method')


def test_a_groot_checkpoint_gets_the_same_table(tmp_path, capsys):
    """omegaq-eval takes GR00T N1.5 too: its scope, its runtime, the same paired episodes."""
    from omegaq_ros.policy import train
    trained = str(tmp_path / 'groot')
    assert train.main(['--out', trained, '--family', 'groot', '--tasks', 'lift',
                       '--episodes-per-task', '1', '--steps', '2', '--batch', '2',
                       '--device', 'cpu', '--workers', '1']) == 0
    out = tmp_path / 'eval'
    assert main(['--policy', os.path.join(trained, 'checkpoint'), '--methods',
                 'fp,omega-dynamic', '--episodes', '1', '--tasks', 'lift', '--workers', '1',
                 '--calibration-seeds', '1000:1001', '--held-out-seeds', '2000:2001',
                 '--out', str(out)]) == 0
    report = json.loads((out / 'results.json').read_text())
    rows = {row['method']: row for row in report['rows'] if row['task'] == 'average'}
    assert list(rows) == ['fp', 'omega-dynamic']
    assert rows['omega-dynamic']['open_loop_error'] > 0.0
    assert 'groot' in capsys.readouterr().out     # the build says which scope it used
