"""Peak CPU memory of tensors allocated by torch ops inside a block (a test-only measurement).

`PeakTensorMemory` is a `TorchDispatchMode` that records each new output storage with a weakref
callback on its release; `peak` is the highest sum of live bytes reached inside the block on top of
the tensors that already existed (`baseline`, given by the caller: parameters, optimizer state).
It sees every tensor allocated through torch ops (activations, gradients, temporaries), and nothing
of the Python heap or the allocator's slack, which is what an estimate of tensor memory predicts.
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class PeakTensorMemory(TorchDispatchMode):
    """Track live bytes of tensor storages created inside the `with` block."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[int, weakref.ref]] = {}
        self.current = 0
        self.peak = 0

    def _free(self, key: int) -> None:
        nbytes, _ = self.live.pop(key, (0, None))
        self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            st = t.untyped_storage()
            key = st.data_ptr()
            if key == 0 or key in self.live:
                continue
            self.live[key] = (st.nbytes(), weakref.ref(st, lambda _, k=key: self._free(k)))
            self.current += st.nbytes()
            self.peak = max(self.peak, self.current)
        return out
