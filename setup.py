# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""ament_python package definition of omegaq_ros."""

from glob import glob
import os

from setuptools import find_packages, setup

package_name = 'omegaq_ros'


def tree(directory):
    """(install dir, files) pairs for every file under directory, keeping its layout."""
    pairs = []
    for root, _, files in os.walk(directory):
        paths = [os.path.join(root, name) for name in files]
        if paths:
            pairs.append((os.path.join('share', package_name, root), paths))
    return pairs


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.py')),
        ('share/' + package_name + '/config', glob('config/*')),
        *tree('models'),
        *tree('urdf'),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='omegaq_ros maintainers',
    maintainer_email='omegaq-ros@example.com',
    description='W4A4-quantized (Omega-QVLA) VLA policies for ROS 2 robots.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'omegaq-minilm-table = omegaq_ros.minilm.table:main',
            'omegaq-sim-record = omegaq_ros.sim.record:main',
            'omegaq-predict = omegaq_ros.policy.predict_cli:main',
            'camera_node = omegaq_ros.nodes.camera_node:main',
            'arx_r5_bridge = omegaq_ros.nodes.arx_r5_bridge:main',
            'omegaq-arx-r5-urdf = omegaq_ros.robot.urdf:main',
            'policy_node = omegaq_ros.nodes.policy_node:main',
            'sim_node = omegaq_ros.nodes.sim_node:main',
            'quantizer_node = omegaq_ros.nodes.quantizer_node:main',
            'omegaq-quantize = omegaq_ros.policy.quantize_cli:main',
            'omegaq-bringup = omegaq_ros.nodes.bringup:main',
            'omegaq-eval = omegaq_ros.sim.method_eval:main',
        ],
    },
)
