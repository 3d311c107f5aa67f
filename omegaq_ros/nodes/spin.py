# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
The common thin main() of omegaq_ros nodes (Humble/Jazzy: rclpy.init + try/finally).

Shutdown on SIGINT or SIGTERM (Ctrl-C in a terminal running a launch signals the whole process
group; launch itself sends SIGINT, then SIGTERM) is an ordinary end with exit code 0, however
often the signal comes: rclpy's own signal handlers are off (they invalidate the context under
running callbacks and raise KeyboardInterrupt anywhere, e.g. inside destroy_node while a worker
thread is joined); ours only ask the spin loop to stop, and the node is destroyed and rclpy
shut down in order.
"""

import signal
import sys
import threading
import time
from typing import Callable, Optional, Tuple, Type

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

SPIN_PERIOD_S = 0.1                   # the longest a stop request waits for the spin loop
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StartupError(RuntimeError):
    """A node cannot start (missing library, device or vendor messages): exit non-zero."""


def _stop_on_signals():
    """Make SIGINT and SIGTERM set the returned event; return it and the previous handlers."""
    stop = threading.Event()
    previous = {number: signal.signal(number, lambda *_: stop.set()) for number in STOP_SIGNALS}
    return stop, previous


def spin_node(factory: Callable[[], 'rclpy.node.Node'], name: str, args=None,
              startup_errors: Tuple[Type[BaseException], ...] = (StartupError,),
              done: Optional[Callable[['rclpy.node.Node'], bool]] = None,
              linger_s: float = 0.0) -> int:
    """
    Init rclpy, build the node, spin until a signal or shutdown; return the process exit code.

    An exception of `startup_errors` raised while building the node is reported as one clear
    line on stderr and gives exit code 1; SIGINT, SIGTERM (once or repeatedly) and external
    shutdown end normally (0). With `done`, spinning also ends once done(node) is true, then
    waits linger_s so reliable messages published last can still reach their subscribers.
    """
    stop, previous = _stop_on_signals()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        try:
            node = factory()
        except startup_errors as error:
            print(f'[{name}] cannot start: {error}', file=sys.stderr, flush=True)
            return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            while rclpy.ok() and not stop.is_set() and not (done is not None and done(node)):
                executor.spin_once(timeout_sec=SPIN_PERIOD_S)
            if done is not None and not stop.is_set():
                time.sleep(linger_s)
        except ExternalShutdownException:
            pass
        finally:
            executor.remove_node(node)
            node.destroy_node()
            executor.shutdown()
        return 0
    finally:
        if rclpy.ok():
            rclpy.shutdown()
        # After a stop signal more may follow while the interpreter exits, which resets
        # Python-level handlers to the default (death by the signal): ignore them then.
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_IGN if stop.is_set() else handler)
