# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Recipes: presets, YAML, scope patterns, validation."""

from dataclasses import replace

from omegaq_ros.quant import PRESETS, Recipe
import pytest
import yaml

TABLE_PRESETS = ['fp', 'rtn', 'smoothquant', 'hadamard', 'svd', 'omega', 'omega-nostep',
                 'omega-group', 'omega-dynamic', 'omega-fast']


def test_all_design_presets_exist():
    assert list(PRESETS) == TABLE_PRESETS
    assert Recipe.preset('omega').rotation == 'composite'
    assert Recipe.preset('omega').weight_method == 'gptq'
    assert Recipe.preset('omega-group').act_mode == 'static_group'
    assert Recipe.preset('rtn').rotation == 'none'
    fast = Recipe.preset('omega-fast')
    assert fast.for_layer('paligemma_with_expert.paligemma.model.language_model.layers.3.mlp.'
                          'down_proj') == replace(fast, act_mode='dynamic_two_level',
                                                  weight_scales='two_level')
    assert fast.for_layer('paligemma_with_expert.gemma_expert.model.layers.3.mlp.down_proj') \
        == fast and fast.act_mode == 'dynamic_group' and fast.weight_scales == 'group'


def test_yaml_round_trip(tmp_path):
    recipe = Recipe.preset('omega', exclude=('state_proj', 'time_mlp'))
    path = tmp_path / 'recipe.yaml'
    path.write_text(yaml.safe_dump(recipe.to_dict()))
    assert Recipe.from_yaml(str(path)) == recipe
    path.write_text('preset: omega-group\ngptq_damp: 0.05\n')
    loaded = Recipe.from_yaml(str(path))
    assert loaded.act_mode == 'static_group' and loaded.gptq_damp == 0.05


def test_bad_recipes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown recipe preset 'omgea'"):
        Recipe.preset('omgea')
    with pytest.raises(ValueError, match='unknown recipe fields'):
        Recipe.from_dict({'rotaton': 'svd'})
    with pytest.raises(ValueError, match="'act_mode' must be one of"):
        Recipe(act_mode='per_tensor')
    path = tmp_path / 'r.yaml'
    path.write_text('- a list\n')
    with pytest.raises(ValueError, match='mapping'):
        Recipe.from_yaml(str(path))


def test_scope_patterns():
    recipe = Recipe.preset('omega', include=(r'language_model\.', r'expert\.'),
                           exclude=(r'\.lm_head$',))
    assert recipe.selects('language_model.layers.0.self_attn.q_proj')
    assert not recipe.selects('language_model.lm_head')
    assert not recipe.selects('vision_tower.encoder.layers.0.mlp.fc1')
    assert not Recipe.preset('fp').selects('language_model.layers.0.self_attn.q_proj')


def test_a_recipe_file_gets_the_pi05_scope_unless_it_names_one(tmp_path):
    from omegaq_ros.policy.recipes import load_recipe, method_recipe, RecipeError
    path = tmp_path / 'r.yaml'
    path.write_text('preset: omega-group\nact_clip: mse\n')
    assert load_recipe(str(path)) == method_recipe('omega-group+act_clip=mse')
    path.write_text("preset: omega\ninclude: ['expert']\n")
    recipe = load_recipe(str(path))
    assert list(recipe.include) == ['expert']
    assert list(recipe.exclude) == list(Recipe.preset('omega').exclude)
    path.write_text('- a list\n')
    with pytest.raises(RecipeError, match='a recipe file must hold a mapping of Recipe fields'):
        load_recipe(str(path))


def test_a_scope_pattern_given_as_one_string_is_one_pattern():
    from omegaq_ros.policy.recipes import method_recipe
    recipe = method_recipe('omega-dynamic+exclude=transformer_blocks', 'groot')
    assert recipe.exclude == ('transformer_blocks',)
    assert not recipe.selects('action_head.model.transformer_blocks.0.attn1.to_q')
    assert recipe.selects('backbone.eagle_model.language_model.model.layers.0.mlp.down_proj')
    listed = method_recipe('omega-dynamic+exclude=[transformer_blocks, vl_self_attention]',
                           'groot')
    assert listed.exclude == ('transformer_blocks', 'vl_self_attention')
    with pytest.raises(ValueError, match='not a regular expression'):
        Recipe(exclude=('layers.(',))


def test_act_modes_by_scope_from_a_method_string_and_yaml(tmp_path):
    from omegaq_ros.policy.recipes import method_recipe
    recipe = method_recipe('omega-dynamic+act_mode_by_scope={language_model: dynamic_token}')
    assert recipe.act_mode_by_scope == (('language_model', 'dynamic_token'),)
    language = 'paligemma_with_expert.paligemma.model.language_model.layers.0.mlp.down_proj'
    expert = 'paligemma_with_expert.gemma_expert.model.layers.0.mlp.down_proj'
    assert recipe.for_layer(language).act_mode == 'dynamic_token'
    assert recipe.for_layer(expert) is recipe and recipe.act_mode == 'dynamic_group'
    path = tmp_path / 'recipe.yaml'
    path.write_text(yaml.safe_dump(recipe.to_dict()))
    assert Recipe.from_yaml(str(path)) == recipe
    with pytest.raises(ValueError, match="'act_mode_by_scope'.*not one of"):
        Recipe(act_mode_by_scope={'expert': 'per_tensor'})
    with pytest.raises(ValueError, match="'act_mode_by_scope'.*not a regular expression"):
        Recipe(act_mode_by_scope={'layers.(': 'dynamic_token'})


def test_weight_scales_by_scope_from_a_method_string():
    from omegaq_ros.policy.recipes import method_recipe
    recipe = method_recipe('omega-dynamic+act_mode_by_scope={language_model: dynamic_two_level}'
                           '+weight_scales_by_scope={language_model: two_level}')
    language = 'paligemma_with_expert.paligemma.model.language_model.layers.0.mlp.down_proj'
    expert = 'paligemma_with_expert.gemma_expert.model.layers.0.mlp.down_proj'
    chosen = recipe.for_layer(language)
    assert (chosen.act_mode, chosen.weight_scales) == ('dynamic_two_level', 'two_level')
    assert recipe.for_layer(expert) is recipe and recipe.weight_scales == 'group'
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    with pytest.raises(ValueError, match="'weight_scales' must be one of"):
        Recipe(weight_scales='per_row')
    with pytest.raises(ValueError, match="'weight_scales_by_scope'.*not one of"):
        Recipe(weight_scales_by_scope={'expert': 'per_row'})
