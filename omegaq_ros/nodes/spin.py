# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The common thin main() of omegaq_ros nodes (Humble/Jazzy: rclpy.init + try/finally)."""

import sys
from typing import Callable, Tuple, Type

import rclpy
from rclpy.executors import ExternalShutdownException


class StartupError(RuntimeError):
    """A node cannot start (missing library, device or vendor messages): exit non-zero."""


def spin_node(factory: Callable[[], 'rclpy.node.Node'], name: str, args=None,
              startup_errors: Tuple[Type[BaseException], ...] = (StartupError,)) -> int:
    """
    Init rclpy, build the node, spin until Ctrl-C or shutdown; return the process exit code.

    An exception of `startup_errors` raised while building the node is reported as one clear
    line on stderr and gives exit code 1; Ctrl-C and external shutdown end normally (0).
    """
    rclpy.init(args=args)
    try:
        try:
            node = factory()
        except startup_errors as error:
            print(f'[{name}] cannot start: {error}', file=sys.stderr, flush=True)
            return 1
        try:
            rclpy.spin(node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            node.destroy_node()
        return 0
    finally:
        if rclpy.ok():
            rclpy.shutdown()
