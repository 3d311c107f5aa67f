# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
RealSense cameras (three D405s on ARX's bimanual kit) -> sensor_msgs/Image + CameraInfo.

Cameras are opened by serial number through pyrealsense2, which is optional at install time
(``pip install pyrealsense2``); without it, or without the listed devices, the node says so
and exits with code 1. Color frames are published as rgb8 with sensor-data QoS (best effort,
depth 5), stamped with the node clock when the frame is polled; with publish_compressed a jpeg
copy goes to <image_topic>/compressed for consumers without the shared-memory DDS profile.
"""

from typing import Dict

import numpy as np
from omegaq_ros.nodes import conversions as conv
from omegaq_ros.nodes.parameters import CAMERA_NODE, declare_table
from omegaq_ros.nodes.spin import spin_node, StartupError
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data


def import_realsense():
    """Return the pyrealsense2 module or raise StartupError saying how to get it."""
    try:
        import pyrealsense2
    except ImportError as error:
        raise StartupError(
            'pyrealsense2 is not installed (optional dependency of camera_node): '
            f'pip install pyrealsense2, or use librealsense from apt ({error})') from None
    return pyrealsense2


class CameraNode(Node):
    """Poll RealSense color streams and publish Image + CameraInfo per camera."""

    def __init__(self):
        """Declare parameters and publishers, then open every camera by serial number."""
        super().__init__('camera_node')
        self.params = declare_table(self, CAMERA_NODE)
        p = self.params
        realsense = import_realsense()
        lists = {key: list(p[key]) for key in
                 ('serials', 'camera_names', 'image_topics', 'camera_info_topics')}
        if len({len(v) for v in lists.values()}) != 1:
            raise StartupError('serials, camera_names, image_topics and camera_info_topics must '
                               f'have one entry per camera, got {lists}')
        if any(not str(serial).strip() for serial in lists['serials']):
            raise StartupError(f'expected one serial number per camera '
                               f'{lists["camera_names"]}, got {lists["serials"]}')
        self.names = lists['camera_names']
        self.image_pubs = {name: self.create_publisher(conv.Image, topic,
                                                       qos_profile_sensor_data)
                           for name, topic in zip(self.names, lists['image_topics'])}
        self.info_pubs = {name: self.create_publisher(conv.CameraInfo, topic,
                                                      qos_profile_sensor_data)
                          for name, topic in zip(self.names, lists['camera_info_topics'])}
        self.compressed_pubs = {}
        if p['publish_compressed']:
            self.compressed_pubs = {
                name: self.create_publisher(conv.CompressedImage, topic + '/compressed',
                                            qos_profile_sensor_data)
                for name, topic in zip(self.names, lists['image_topics'])}
        self.pipelines: Dict[str, object] = {}
        self.intrinsics: Dict[str, object] = {}
        self._open(realsense, dict(zip(self.names, lists['serials'])))
        self.timer = self.create_timer(0.5 / p['fps'], self.poll_callback)

    def _open(self, rs, serials: Dict[str, str]) -> None:
        connected = [device.get_info(rs.camera_info.serial_number)
                     for device in rs.context().query_devices()]
        absent = [serial for serial in serials.values() if serial not in connected]
        if absent:
            raise StartupError(f'RealSense serials {absent} are not connected; expected '
                               f'{serials}, connected: {connected}')
        p = self.params
        for name, serial in serials.items():
            config = rs.config()
            config.enable_device(serial)
            config.enable_stream(rs.stream.color, p['width'], p['height'], rs.format.rgb8,
                                 p['fps'])
            pipeline = rs.pipeline()
            try:
                profile = pipeline.start(config)
            except RuntimeError as error:
                for started in self.pipelines.values():
                    started.stop()
                self.pipelines = {}
                raise StartupError(f'{name} (serial {serial}): cannot start '
                                   f'{p["width"]}x{p["height"]} rgb8 @ {p["fps"]} Hz: {error}')
            self.pipelines[name] = pipeline
            stream = profile.get_stream(rs.stream.color).as_video_stream_profile()
            self.intrinsics[name] = stream.get_intrinsics()
            self.get_logger().info(f'{name}: RealSense {serial} streaming')

    def poll_callback(self) -> None:
        """Publish every camera's newest color frame, if one arrived since the last poll."""
        for name, pipeline in self.pipelines.items():
            frames = pipeline.poll_for_frames()
            if not frames:
                continue
            color = frames.get_color_frame()
            if not color:
                continue
            stamp = self.get_clock().now().nanoseconds * 1e-9
            rgb = np.asanyarray(color.get_data())
            frame_id = f'{name}_color_optical_frame'
            intr = self.intrinsics[name]
            self.image_pubs[name].publish(conv.image_from_array(rgb, stamp, frame_id))
            self.info_pubs[name].publish(conv.camera_info(
                intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy,
                distortion=list(intr.coeffs), stamp=stamp, frame_id=frame_id))
            if name in self.compressed_pubs:
                self.compressed_pubs[name].publish(conv.compressed_image_from_array(
                    rgb, stamp, frame_id, quality=self.params['jpeg_quality']))

    def destroy_node(self):
        """Stop the RealSense pipelines, then destroy the node."""
        for pipeline in self.pipelines.values():
            try:
                pipeline.stop()
            except RuntimeError:
                pass
        self.pipelines = {}
        return super().destroy_node()


def main(args=None) -> int:
    """Run the camera node; exit code 1 without pyrealsense2 or the listed cameras."""
    return spin_node(CameraNode, 'camera_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
