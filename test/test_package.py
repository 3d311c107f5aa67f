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
