"""A stand-in CUDA device for a CPU-only machine: tensors that say they are on ``cuda:0`` and compute on the
CPU, and PyTorch's same-device rules enforced on every operation, so code that mixes devices fails here
as it would on a GPU.

    with FakeCuda():
        model.to(FakeCuda.device)          # parameters and buffers now report cuda:0
        out = pipeline(image)              # RuntimeError where a CPU tensor meets a cuda one

The ``FakeCuda`` dispatch mode sees every aten operation. Factories and copies asked for ``cuda`` run on
the CPU and come back as ``FakeCudaTensor``\\ s (a wrapper whose ``device`` is cuda:0 around a CPU tensor);
every other operation is checked as CUDA kernels check their inputs, then run on the CPU tensors:

- all tensor arguments on one device, where a CPU tensor of zero dimensions (a wrapped scalar) may join
  cuda ones;
- ``copy_`` and ``to`` may cross devices; indexing may take CPU indices (``x_cuda[cpu_mask]``);
- a random draw for a device takes a generator of that device (``torch.Generator`` is the CPU's);
- a cuda tensor cannot become a NumPy array (``.numpy()`` raises, as on a GPU; ``.cpu()`` first).

The numbers are the CPU's, so a run on the fake device must give exactly the CPU run's answer.

Why not PyTorch's own ``FakeTensorMode`` or the ``meta`` device: their tensors hold no data, and the predict
path reads numbers (``.tolist()``, ``int(mask.sum())``, the NumPy summaries), so they stop at the first read.
Limits: a backward pass (Grad-CAM) needs the real CUDA autograd engine and is not supported; kernels are
the CPU's (cuDNN is switched off while the mode is active).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")
# operations whose tensors may be on different devices
CROSS_DEVICE = {aten.copy_.default}  # (``to`` and factories take a device argument: handled first)
INDEXING = {  # self, then a list of indices (CPU or self's device), then values (self's device)
    aten.index.Tensor,
    aten.index_put.default,
    aten.index_put_.default,
    aten._index_put_impl_.default,
    aten._unsafe_index.Tensor,
}


class DeviceMismatch(RuntimeError):
    """An operation mixed devices (a GPU says: ``Expected all tensors to be on the same device``)."""


class FakeCudaTensor(torch.Tensor):
    """A CPU tensor (``elem``) that reports ``cuda:0`` as its device."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor) -> FakeCudaTensor:
        return torch.Tensor._make_wrapper_subclass(
            cls,
            elem.shape,
            strides=elem.stride(),
            storage_offset=elem.storage_offset(),
            dtype=elem.dtype,
            layout=elem.layout,
            device=CUDA,
            requires_grad=elem.requires_grad,
        )

    def __init__(self, elem: torch.Tensor) -> None:
        self.elem = elem

    __torch_function__ = torch._C._disabled_torch_function_impl

    def __repr__(self) -> str:
        return f"FakeCudaTensor({self.elem!r})"

    # a traceable wrapper, so Module.to swaps parameters for these instead of setting their .data
    def __tensor_flatten__(self) -> tuple[list[str], None]:
        return ["elem"], None

    @staticmethod
    def __tensor_unflatten__(inner: dict, meta: None, size: Any, stride: Any) -> FakeCudaTensor:
        return FakeCudaTensor(inner["elem"])

    def tolist(self) -> Any:
        """As on a GPU: copied to the host and read."""
        return self.elem.tolist()

    def numpy(self, *, force: bool = False) -> Any:
        """As on a GPU: refused (``.cpu()`` first)."""
        raise TypeError(
            "can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to host "
            "memory first."
        )

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return run_checked(func, args, kwargs or {})


def device_of(t: torch.Tensor) -> torch.device:
    return CUDA if isinstance(t, FakeCudaTensor) else t.device


def _mismatch(func, a: torch.Tensor, b: torch.Tensor) -> DeviceMismatch:
    return DeviceMismatch(
        f"Expected all tensors to be on the same device, but found at least two devices, {device_of(a)} and "
        f"{device_of(b)}! (in {func}, shapes {tuple(a.shape)} and {tuple(b.shape)})"
    )


def common_device(func, tensors: list[torch.Tensor]) -> torch.device:
    """The device of an operation on ``tensors``, as CUDA kernels decide it (CPU scalars join any device)."""
    holder: torch.Tensor | None = None  # the first tensor that is not a CPU scalar
    for t in tensors:
        if t.dim() == 0 and device_of(t) == CPU:
            continue
        if holder is None:
            holder = t
        elif device_of(t) != device_of(holder):
            raise _mismatch(func, holder, t)
    return device_of(holder) if holder is not None else CPU


def _schema_value(func, args: tuple, kwargs: dict, name: str) -> Any:
    for i, arg in enumerate(func._schema.arguments):
        if arg.name == name:
            if name in kwargs:
                return kwargs[name]
            return args[i] if i < len(args) and not arg.kwarg_only else None
    return None


def target_device(func, args: tuple, kwargs: dict) -> torch.device:
    """Where the result of ``func`` lives; raises ``DeviceMismatch`` where a GPU would refuse the call."""
    tensors = [t for t in pytree.arg_tree_leaves(*args, **kwargs) if isinstance(t, torch.Tensor)]
    if any(a.name == "device" for a in func._schema.arguments):  # factories, copies to a device
        asked = kwargs.get("device")
        device = torch.device(asked) if asked is not None else (device_of(tensors[0]) if tensors else CPU)
        device = CUDA if device.type == "cuda" else device
        generator = _schema_value(func, args, kwargs, "generator")
        if generator is not None and generator.device.type != device.type:
            raise DeviceMismatch(
                f"Expected a '{device.type}' device type for generator but found '{generator.device.type}'"
            )
        return device
    if func in CROSS_DEVICE:
        return device_of(tensors[0])
    if func in INDEXING:
        self, indices = args[0], args[1]
        home = device_of(self)
        for index in indices:
            if index is not None and device_of(index) not in (CPU, home):
                raise DeviceMismatch(
                    f"indices should be either on cpu or on the same device as the indexed tensor ({home}) "
                    f"(in {func})"
                )
        rest = [t for t in pytree.arg_tree_leaves(*args[2:], **kwargs) if isinstance(t, torch.Tensor)]
        common_device(func, [self, *rest])
        return home
    return common_device(func, tensors)


def _unwrap(x: Any) -> Any:
    if isinstance(x, FakeCudaTensor):
        return x.elem
    if isinstance(x, torch.device) and x.type == "cuda":
        return CPU
    return x


def run_checked(func, args: tuple, kwargs: dict) -> Any:
    """Check ``func``'s devices, run it on the CPU, and give cuda results back as ``FakeCudaTensor``\\ s."""
    if (
        func is not aten.detach_.default
        and torch.Tag.inplace_view in func.tags
        and any(isinstance(a, FakeCudaTensor) for a in args)
    ):
        raise NotImplementedError(f"{func} (an in-place view) is not supported on the fake device")
    device = target_device(func, args, kwargs)
    plain_args, plain_kwargs = pytree.tree_map(_unwrap, (args, kwargs))
    out = func(*plain_args, **plain_kwargs)
    originals = {
        id(p): a
        for a, p in zip(
            pytree.tree_leaves((args, kwargs)), pytree.tree_leaves((plain_args, plain_kwargs)), strict=True
        )
        if isinstance(a, FakeCudaTensor)
    }

    def wrap(x: Any) -> Any:
        if not isinstance(x, torch.Tensor):
            return x
        if (
            id(x) in originals
        ):  # an argument itself: in-place, out=, or a ``to`` with nothing to do on the CPU
            return originals[id(x)] if device == CUDA else x.clone()  # to the host: a copy, as from a GPU
        if device != CUDA:
            return x
        if func.is_view and args and isinstance(args[0], torch.Tensor):
            # a view is an inference tensor exactly when its base is one (else autograd cannot track it)
            with torch.inference_mode(args[0].is_inference()):
                return FakeCudaTensor(x)
        return FakeCudaTensor(x)

    return pytree.tree_map(wrap, out)


class FakeCuda(TorchDispatchMode):
    """While active, ``cuda`` is a fake device computed on the CPU, with device mixing refused."""

    device = CUDA

    def __init__(self) -> None:
        super().__init__()
        # registered as PyTorch's fake mode, so asking for a cuda tensor does not initialise CUDA
        self._mode_key = torch._C._TorchDispatchModeKey.FAKE
        self._lift = self._cudnn = False

    def __enter__(self) -> FakeCuda:
        # torch.tensor(data, device="cuda") builds on the CPU and asks this mode to move it
        self._lift, self._cudnn = torch._C._only_lift_cpu_tensors(), torch.backends.cudnn.enabled
        torch._C._set_only_lift_cpu_tensors(True)
        torch.backends.cudnn.enabled = False  # composite operations then pick kernels the CPU has
        torch._C._ensureCUDADeviceGuardSet()  # without a GPU, a no-op device guard (as FakeTensorMode does)
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        torch._C._set_only_lift_cpu_tensors(self._lift)
        torch.backends.cudnn.enabled = self._cudnn
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return run_checked(func, args, kwargs or {})
