# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Approximate-time synchronization of observations (message_filters is not pip-installable).

Pure Python on float-second stamps, no rclpy. ObservationSync keeps a short buffer per
required topic and selects the newest set with one message per topic whose stamps lie within
`sync_slop` of each other, none older than `max_obs_age` before "now". When no such set exists
the result says why: a topic never arrived, a topic is stale (by how much), or the newest
messages do not match within the slop. A message stamped more than `max_future` ahead of
"now" is refused on arrival (add raises) and never buffered: buffers are kept sorted by stamp
and trimmed from the oldest end, so buffered future stamps would push out every valid message.
Buffers are bounded in count and, per topic, in bytes. JointStateAssembler builds one 14-D
joint state from per-arm JointState messages (each ARX bridge publishes its own arm's 7 joints)
and names the joints that keep a state from forming.
"""

import bisect
from dataclasses import dataclass, field
import math
from typing import Any, Dict, Hashable, Optional, Sequence

import numpy as np


@dataclass
class SyncResult:
    """The outcome of ObservationSync.select: a synchronized set, or why there is none."""

    ok: bool
    reason: str = ''
    stamps: Dict[str, float] = field(default_factory=dict)
    messages: Dict[str, Any] = field(default_factory=dict)
    stamp: float = float('nan')       # oldest stamp of the set: the observation time
    age: float = float('nan')         # now - stamp [s]
    spread: float = float('nan')      # newest - oldest stamp of the set [s]


def _ms(seconds: float) -> str:
    return f'{seconds * 1e3:.0f} ms'


class ObservationSync:
    """Per-topic buffers and newest-set selection by stamp."""

    def __init__(self, topics: Sequence[str], sync_slop: float, max_obs_age: float,
                 buffer_size: int = 30, max_bytes: Optional[int] = None,
                 max_future: Optional[float] = None):
        """
        Set up buffers for the required topics; slop, age and max_future are in seconds.

        max_bytes bounds the bytes buffered per topic (None: no bound); max_future is how far
        ahead of "now" a stamp may lie on arrival (None: max_obs_age).
        """
        if len(topics) == 0 or len(set(topics)) != len(topics):
            raise ValueError(f'observation sync: expected distinct topic names, '
                             f'got {list(topics)}')
        if not (sync_slop >= 0.0 and max_obs_age > 0.0 and buffer_size >= 1):
            raise ValueError(f'observation sync: expected sync_slop >= 0, max_obs_age > 0, '
                             f'buffer_size >= 1, got {sync_slop}, {max_obs_age}, {buffer_size}')
        self.topics = tuple(topics)
        self.sync_slop = float(sync_slop)
        self.max_obs_age = float(max_obs_age)
        self.buffer_size = int(buffer_size)
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        self.max_future = self.max_obs_age if max_future is None else float(max_future)
        if not (self.max_future >= 0.0 and (self.max_bytes is None or self.max_bytes > 0)):
            raise ValueError(f'observation sync: expected max_future >= 0 and max_bytes > 0, '
                             f'got {self.max_future}, {self.max_bytes}')
        self._stamps = {topic: [] for topic in self.topics}
        self._messages = {topic: [] for topic in self.topics}
        self._sizes = {topic: [] for topic in self.topics}

    def check_stamp(self, topic: str, stamp: float, now: Optional[float] = None) -> float:
        """Return the stamp as float seconds; raise ValueError if unknown, non-finite, future."""
        if topic not in self._stamps:
            raise ValueError(f'observation sync: expected one of {list(self.topics)}, '
                             f'got topic {topic!r}')
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise ValueError(f'observation sync: {topic} stamp is not finite ({stamp})')
        if now is not None and stamp > now + self.max_future:
            raise ValueError(f'stamp {stamp:.3f} s is {_ms(stamp - now)} ahead of this '
                             f"node's clock ({now:.3f} s); expected at most "
                             f'{_ms(self.max_future)} ahead: message refused')
        return stamp

    def add(self, topic: str, stamp: float, msg: Any = None, now: Optional[float] = None,
            nbytes: int = 0) -> None:
        """
        Buffer one message of a required topic (kept sorted by stamp, oldest dropped).

        With `now`, a stamp more than max_future ahead raises ValueError and nothing is
        buffered; `nbytes` counts against max_bytes (a message larger than it raises).
        """
        stamp = self.check_stamp(topic, stamp, now)
        nbytes = int(nbytes)
        if self.max_bytes is not None and nbytes > self.max_bytes:
            raise ValueError(f'message of {nbytes} bytes: expected at most {self.max_bytes} '
                             f'bytes per {topic} buffer: message refused')
        stamps, messages, sizes = self._stamps[topic], self._messages[topic], self._sizes[topic]
        index = bisect.bisect_right(stamps, stamp)
        stamps.insert(index, stamp)
        messages.insert(index, msg)
        sizes.insert(index, nbytes)
        limit = float('inf') if self.max_bytes is None else self.max_bytes
        while len(stamps) > self.buffer_size or sum(sizes) > limit:
            del stamps[0], messages[0], sizes[0]

    def buffered_bytes(self) -> Dict[str, int]:
        """Return the bytes held per topic (as given to add)."""
        return {topic: sum(sizes) for topic, sizes in self._sizes.items()}

    def reset(self) -> None:
        """Forget every buffered message."""
        for topic in self.topics:
            self._stamps[topic].clear()
            self._messages[topic].clear()
            self._sizes[topic].clear()

    def newest_stamps(self) -> Dict[str, float]:
        """Return the newest buffered stamp per topic (topics without messages are absent)."""
        return {t: s[-1] for t, s in self._stamps.items() if s}

    def select(self, now: float) -> SyncResult:
        """Return the newest set within sync_slop, none older than max_obs_age, or why not."""
        missing = [topic for topic in self.topics if not self._stamps[topic]]
        if missing:
            return SyncResult(False, f'missing topic(s) {missing}: no message received yet')
        oldest_allowed = now - self.max_obs_age
        newest_allowed = now + self.sync_slop       # tolerate a little clock skew, no more
        stale, future = [], []
        for topic in self.topics:
            stamps = self._stamps[topic]
            fresh = [s for s in stamps if oldest_allowed <= s <= newest_allowed]
            if fresh:
                continue
            if stamps[0] > newest_allowed:
                future.append(f'{topic} is {_ms(stamps[0] - now)} in the future')
            else:
                newest = max(s for s in stamps if s <= newest_allowed)
                stale.append(f'{topic} newest is {_ms(now - newest)} old')
        if stale or future:
            return SyncResult(False, f'stale input (max_obs_age {_ms(self.max_obs_age)}): '
                              + '; '.join(stale + future))
        anchors = sorted({s for stamps in self._stamps.values() for s in stamps
                          if oldest_allowed <= s <= newest_allowed}, reverse=True)
        for anchor in anchors:
            low = max(anchor - self.sync_slop, oldest_allowed)
            chosen = {}
            for topic in self.topics:
                stamps = self._stamps[topic]
                index = bisect.bisect_right(stamps, anchor) - 1
                if index < 0 or stamps[index] < low:
                    break
                chosen[topic] = index
            else:
                stamps = {t: self._stamps[t][i] for t, i in chosen.items()}
                oldest, newest = min(stamps.values()), max(stamps.values())
                return SyncResult(True, '', stamps,
                                  {t: self._messages[t][i] for t, i in chosen.items()},
                                  stamp=oldest, age=now - oldest, spread=newest - oldest)
        newest = self.newest_stamps()
        spread = max(newest.values()) - min(newest.values())
        listing = ', '.join(f'{t}={_ms(now - s)} old' for t, s in newest.items())
        return SyncResult(False, f'no match within sync_slop {_ms(self.sync_slop)}: newest '
                          f'messages {listing} (spread {_ms(spread)})')


class JointStateAssembler:
    """
    Assemble one joint state from partial messages matched by joint name.

    Each ARX R5 bridge publishes its own arm's 7 joints on /joint_states; a single 14-name
    message works too. update() returns (stamp, positions) once every joint has a value and the
    contributing stamps lie within `slop`; the stamp is the oldest contributing one.
    """

    def __init__(self, joint_names: Sequence[str], slop: float):
        """Expect exactly `joint_names`; stamps of the parts must agree within `slop` seconds."""
        self.joint_names = tuple(joint_names)
        self.slop = float(slop)
        self._latest: Dict[Hashable, tuple] = {}

    def reset(self) -> None:
        """Forget every partial state."""
        self._latest.clear()

    def update(self, stamp: float, positions: Dict[str, float]) -> Optional[tuple]:
        """
        Add one message's {name: position}; return (stamp, array) when a full state is ready.

        Raises ValueError naming unknown joints (the message is ignored then).
        """
        unknown = [name for name in positions if name not in self.joint_names]
        if unknown:
            raise ValueError(f'joint state: unknown joint names {unknown}; expected names from '
                             f'{list(self.joint_names)}')
        for name, value in positions.items():
            self._latest[name] = (float(stamp), float(value))
        if any(name not in self._latest for name in self.joint_names):
            return None
        stamps = [self._latest[name][0] for name in self.joint_names]
        if max(stamps) - min(stamps) > self.slop:
            return None
        return min(stamps), np.array([self._latest[name][1] for name in self.joint_names])

    def missing(self) -> list:
        """Return the joint names that have not been received yet."""
        return [name for name in self.joint_names if name not in self._latest]

    def incomplete(self) -> list:
        """
        Return the joints that keep a full state from forming.

        Those never received, or last received more than `slop` before the newest joint
        (the messages lack them).
        """
        if not self._latest:
            return list(self.joint_names)
        newest = max(stamp for stamp, _ in self._latest.values())
        return [name for name in self.joint_names if name not in self._latest
                or self._latest[name][0] < newest - self.slop]
