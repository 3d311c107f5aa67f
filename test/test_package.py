# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The ament_python package: manifest, install layout and the ROS-free core."""

import ast
import configparser
import os
import subprocess
import sys

from catkin_pkg.package import parse_package

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_package_xml_is_valid_format_3():
    package = parse_package(os.path.join(ROOT, 'package.xml'))
    package.validate()
    assert package.package_format == 3
    assert package.name == 'omegaq_ros'
    assert package.get_build_type() == 'ament_python'
    exec_depends = {d.name for d in package.exec_depends}
    for name in ('rclpy', 'sensor_msgs', 'trajectory_msgs', 'std_msgs', 'std_srvs',
                 'diagnostic_msgs', 'launch', 'launch_ros', 'ament_index_python',
                 'python3-numpy', 'python3-opencv', 'python3-yaml'):
        assert name in exec_depends, f'package.xml lacks exec_depend {name}'
    test_depends = {d.name for d in package.test_depends}
    assert {'ament_flake8', 'ament_pep257', 'python3-pytest'} <= test_depends


def test_scripts_install_where_ros2_run_looks():
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, 'setup.cfg'))
    assert config['develop']['script_dir'] == '$base/lib/omegaq_ros'
    assert config['install']['install_scripts'] == '$base/lib/omegaq_ros'


def test_console_scripts_resolve_to_functions():
    tree = ast.parse(open(os.path.join(ROOT, 'setup.py')).read())
    scripts = [node.value for node in ast.walk(tree)
               if isinstance(node, ast.Constant) and isinstance(node.value, str)
               and ' = omegaq_ros.' in node.value]
    assert scripts, 'setup.py declares no console_scripts'
    import importlib
    for entry in scripts:
        _, target = (part.strip() for part in entry.split('='))
        module, function = target.split(':')
        assert callable(getattr(importlib.import_module(module), function)), entry


def test_ament_index_finds_the_package():
    from ament_index_python.packages import get_package_share_directory
    share = get_package_share_directory('omegaq_ros')
    assert os.path.isfile(os.path.join(share, 'package.xml'))


def test_quant_core_imports_without_ros():
    code = ('import sys\n'
            'import omegaq_ros.quant, omegaq_ros.minilm.table\n'
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('rclpy', 'sensor_msgs', 'trajectory_msgs', 'std_msgs')]\n"
            'assert not bad, bad\n')
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT)


def _source_files(*folders):
    for folder in folders:
        for directory, _, names in os.walk(os.path.join(ROOT, folder)):
            for name in sorted(names):
                if name.endswith('.py'):
                    yield os.path.join(directory, name)


def test_functions_outside_the_kernels_stay_short():
    # A function that long holds several jobs; split it by role, each piece named for its job.
    # The Triton kernels are exempt: a kernel body is one fused pass and reads best whole.
    limit, long = 100, []
    kernels = os.path.join(ROOT, 'omegaq_ros', 'kernels')
    for path in _source_files('omegaq_ros'):
        if path.startswith(kernels + os.sep):
            continue
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    long.append(f'{os.path.relpath(path, ROOT)}:{node.lineno} {node.name} '
                                f'({lines} lines)')
    assert not long, f'functions over {limit} lines: {long}'


def test_code_points_only_at_what_is_in_the_repository():
    # Documents outside the repository and issue numbers mean nothing to a reader of a copy.
    import re
    pattern = re.compile(r'DESIGN\.md|shared/reference|\.\./shared|\bissue\s*#?\d+|'
                         r'(?<![\w&])#\d+\b', re.IGNORECASE)
    found = []
    for path in _source_files('omegaq_ros', 'launch', 'test'):
        if os.path.samefile(path, __file__):      # the pattern itself
            continue
        for number, line in enumerate(open(path, encoding='utf-8'), 1):
            if pattern.search(line):
                found.append(f'{os.path.relpath(path, ROOT)}:{number}: {line.strip()}')
    assert not found, 'references outside the repository:\n' + '\n'.join(found)
