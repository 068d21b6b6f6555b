"""Where a column of a layer's 2-D view sits in the weight: input channel and kernel position.

A conv layer's heatmap row is its filter flattened in (C, kh, kw) order (see
:func:`pruneviz.core.display.as_2d`), so column ``c`` is input channel ``c // (kh·kw)`` at kernel
position ``unravel(c % (kh·kw))``. The heatmap draws separators every ``kh·kw`` columns, the
hover read-out names channel and kernel position, and the filter panel lays a filter out as one
kh×kw tile per input channel; all three use :class:`KernelLayout`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class KernelLayout:
    """Input channels × kernel of one layer's weight; ``kernel == ()`` for Linear.

    Example::

        k = KernelLayout.of((32, 16, 3, 3))
        k.locate(14)   # -> (1, (1, 2)): input channel 1, kernel row 1, column 2
    """

    channels: int
    kernel: tuple[int, ...] = ()

    @classmethod
    def of(cls, shape) -> "KernelLayout":
        """From a weight shape (out, in, *kernel)."""
        shape = tuple(int(s) for s in shape)
        if len(shape) <= 2:
            return cls(shape[1] if len(shape) == 2 else 1, ())
        return cls(shape[1], shape[2:])

    @property
    def is_conv(self) -> bool:
        return bool(self.kernel)

    @property
    def group(self) -> int:
        """Columns per input channel (kh·kw for Conv2d, 1 for Linear)."""
        return math.prod(self.kernel) if self.kernel else 1

    def locate(self, column: int) -> tuple[int, tuple[int, ...]]:
        """Column of the 2-D view -> (input channel, kernel position)."""
        ch, k = divmod(int(column), self.group)
        pos = []
        for n in reversed(self.kernel):
            k, r = divmod(k, n)
            pos.append(r)
        return ch, tuple(reversed(pos))

    def describe(self, row: int, column: int) -> str:
        """``"neuron 12, input channel 3, kernel (1, 2)"`` (conv) or ``"neuron 12, input 40"``."""
        if not self.is_conv:
            return f"neuron {row}, input {column}"
        ch, pos = self.locate(column)
        return f"neuron {row}, input channel {ch}, kernel ({', '.join(map(str, pos))})"
