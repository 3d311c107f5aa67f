# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The common thin main() of omegaq_ros nodes (Humble/Jazzy: rclpy.init + try/finally)."""

import sys
import time
from typing import Callable, Optional, Tuple, Type

import rclpy
from rclpy.executors import ExternalShutdownException


class StartupError(RuntimeError):
    """A node cannot start (missing library, device or vendor messages): exit non-zero."""


def spin_node(factory: Callable[[], 'rclpy.node.Node'], name: str, args=None,
              startup_errors: Tuple[Type[BaseException], ...] = (StartupError,),
              done: Optional[Callable[['rclpy.node.Node'], bool]] = None,
              linger_s: float = 0.0) -> int:
    """
    Init rclpy, build the node, spin until Ctrl-C or shutdown; return the process exit code.

    An exception of `startup_errors` raised while building the node is reported as one clear
    line on stderr and gives exit code 1; Ctrl-C and external shutdown end normally (0).
    With `done`, spinning also ends once done(node) is true, then waits linger_s so reliable
    messages published last can still reach their subscribers.
    """
    rclpy.init(args=args)
    try:
        try:
            node = factory()
        except startup_errors as error:
            print(f'[{name}] cannot start: {error}', file=sys.stderr, flush=True)
            return 1
        try:
            if done is None:
                rclpy.spin(node)
            else:
                while rclpy.ok() and not done(node):
                    rclpy.spin_once(node, timeout_sec=0.1)
                time.sleep(linger_s)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            node.destroy_node()
        return 0
    finally:
        if rclpy.ok():
            rclpy.shutdown()
