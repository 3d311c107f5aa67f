# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
The venv prefix is laid out as colcon's ament_python install does (ros2 launch: no pip wheel).

The lookups below are those of ros2launch (get_share_file_path_from_package: os.walk of the
package's share directory, which does not enter linked folders), launch_ros' Node
(ExecutableInPackage: PREFIX/lib/PKG/EXECUTABLE must exist) and ros2 run (executable files
under PREFIX/lib/PKG), with the real ament_index_python on AMENT_PREFIX_PATH.
"""

import ast
import glob
import os
import subprocess

from ament_index_python.packages import get_package_prefix, get_package_share_directory
from omegaq_ros.install_layout import lay_out, setup_arguments
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def prefix(tmp_path_factory):
    root = tmp_path_factory.mktemp('prefix')
    # An old-style registration: share/omegaq_ros/launch a link to a folder of ours.
    kept = tmp_path_factory.mktemp('linked')
    (kept / 'keep.txt').write_text('not to be deleted through the link')
    os.makedirs(root / 'share' / 'omegaq_ros')
    os.symlink(kept, root / 'share' / 'omegaq_ros' / 'launch')
    written = lay_out(str(root))
    assert (kept / 'keep.txt').exists(), 'the old link was followed'
    return str(root), written


def share_file(package, file_name):
    """Find a launch file the way `ros2 launch` does (ros2launch.api)."""
    matches = [os.path.join(path, name)
               for path, _, files in os.walk(get_package_share_directory(package))
               for name in files if name == file_name]
    if not matches:
        raise FileNotFoundError(f"file '{file_name}' was not found in the share directory")
    assert len(matches) == 1, matches
    return matches[0]


def test_ros2_launch_finds_every_launch_file_as_a_plain_file(prefix, monkeypatch):
    root, _ = prefix
    monkeypatch.setenv('AMENT_PREFIX_PATH', root)
    for source in glob.glob(os.path.join(ROOT, 'launch', '*.launch.py')):
        found = share_file('omegaq_ros', os.path.basename(source))
        assert found == os.path.join(root, 'share', 'omegaq_ros', 'launch',
                                     os.path.basename(source))
        assert not os.path.islink(found) and open(found).read() == open(source).read()


def test_share_holds_config_urdf_models_and_package_xml_as_plain_files(prefix, monkeypatch):
    root, written = prefix
    monkeypatch.setenv('AMENT_PREFIX_PATH', root)
    share = get_package_share_directory('omegaq_ros')
    for relative in ('package.xml', 'config/policy_node.yaml', 'config/fastdds_shm.xml',
                     'urdf/arx_r5_bimanual.urdf', 'models/pi05_small_w4a4/omegaq.json',
                     'models/pi05_small/checkpoint/config.json'):
        path = os.path.join(share, relative)
        assert os.path.isfile(path) and not os.path.islink(path), relative
        with open(path, 'rb') as a, open(os.path.join(ROOT, relative), 'rb') as b:
            assert a.read() == b.read(), relative
    for path, folders, files in os.walk(share):
        for name in folders + files:
            assert not os.path.islink(os.path.join(path, name)), os.path.join(path, name)
    expected = sum(len(sources) for _, sources in setup_arguments()['data_files'])
    assert len(written['data']) == expected


def _launched_executables():
    names = set()
    for path in glob.glob(os.path.join(ROOT, 'launch', '*.launch.py')):
        tree = ast.parse(open(path).read())
        for call in ast.walk(tree):
            keywords = {k.arg: k.value for k in getattr(call, 'keywords', [])}
            if isinstance(call, ast.Call) and 'executable' in keywords and \
                    getattr(keywords.get('package'), 'value', None) == 'omegaq_ros':
                names.add(keywords['executable'].value)
    return sorted(names)


def test_node_and_ros2_run_find_every_executable_in_lib(prefix, monkeypatch):
    root, written = prefix
    monkeypatch.setenv('AMENT_PREFIX_PATH', root)
    lib = os.path.join(get_package_prefix('omegaq_ros'), 'lib', 'omegaq_ros')
    runnable = {name for name in os.listdir(lib)
                if os.access(os.path.join(lib, name), os.X_OK)}
    scripts = {e.split('=')[0].strip()
               for e in setup_arguments()['entry_points']['console_scripts']}
    assert runnable == scripts and len(written['scripts']) == len(scripts)
    launched = _launched_executables()
    assert {'policy_node', 'sim_node', 'quantizer_node', 'camera_node', 'arx_r5_bridge'} <= \
        set(launched) <= runnable
    for name in runnable:
        path = os.path.join(lib, name)
        assert os.path.isfile(path) and not os.path.islink(path)


def test_an_installed_executable_runs(prefix):
    root, _ = prefix
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run([os.path.join(root, 'lib', 'omegaq_ros', 'omegaq-arx-r5-urdf'),
                             '--help'], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and 'usage' in result.stdout, result.stderr


def test_setup_env_lays_the_prefix_out_instead_of_linking():
    source = open(os.path.join(ROOT, 'scripts', 'setup_env.sh')).read()
    assert 'python" -m omegaq_ros.install_layout "$venv"' in source
    assert 'ln -s' not in source
