# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Offline quantizer node: calibration episodes from rosbag2 -> W4A4 artifact + report, then exit.

    ros2 run omegaq_ros quantizer_node --ros-args -p calibration:=bags/ -p output:=out/w4a4

A one-shot job with a ROS surface only for its parameters (config/quantizer_node.yaml) and its
log: the work is omegaq_ros.policy.calibration.quantize_from_bags, the same function as the
ROS-free `omegaq-quantize` CLI. Exit code 0 when the artifact is written; 1 with one clear
line (and no output directory left behind) for an unreadable bag, missing topics, too few
episodes or bad parameters.
"""

import sys

from omegaq_ros.nodes.parameters import declare_table, QUANTIZER_NODE
from omegaq_ros.policy import calibration
import rclpy
from rclpy.node import Node


class QuantizerNode(Node):
    """Declare the quantizer's parameters; run() does the job once."""

    def __init__(self):
        """Declare every parameter of the QUANTIZER_NODE table."""
        super().__init__('quantizer_node')
        self.params = declare_table(self, QUANTIZER_NODE)

    def progress(self, message: str) -> None:
        """Log one progress line."""
        self.get_logger().info(message)

    def run(self) -> int:
        """Quantize with the parameters; return the process exit code."""
        p = self.params
        try:
            result = calibration.quantize_from_bags(
                p['checkpoint'], [p['calibration']] if p['calibration'] else [], p['output'],
                recipe=p['recipe'], overwrite=p['overwrite'], min_episodes=p['min_episodes'],
                max_samples=p['max_samples'], device=p['device'], seed=p['seed'],
                camera_names=list(p['camera_names']), camera_topics=list(p['camera_topics']),
                joint_states_topic=p['joint_states_topic'],
                instruction_topic=p['instruction_topic'], sync_slop=p['sync_slop'],
                embodiment=p['embodiment'], progress=self.progress)
        except (calibration.CalibrationError, FileNotFoundError) as error:
            self.get_logger().error(f'quantization refused: {error}')
            print(f'[quantizer_node] error: {error}', file=sys.stderr, flush=True)
            return 1
        self.get_logger().info(
            f"done: {result['quantized_layers']} layers W4A4 from {result['observations']} "
            f"observations of {result['episodes']} episodes -> {result['output']}")
        return 0


def main(args=None) -> int:
    """Run the quantization once and return its exit code."""
    rclpy.init(args=args)
    try:
        node = QuantizerNode()
        try:
            return node.run()
        except KeyboardInterrupt:
            return 130
        finally:
            node.destroy_node()
    finally:
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == '__main__':
    sys.exit(main())
