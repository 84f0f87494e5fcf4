"""Tiny user-side architectures, imported by tests as ``tests.helpers:factory``."""

from __future__ import annotations

import torch
from torch import nn


def tiny_mlp(in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10) -> nn.Module:
    """A user's own victim architecture: a two-layer MLP."""
    h, w = image_size
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * h * w, 64), nn.ReLU(), nn.Linear(64, num_classes))


class ConvView(nn.Module):
    """A user's conv net that flattens with ``view``, which a channels-last activation would refuse."""

    def __init__(self, in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.fc = nn.Linear(4 * image_size[0] * image_size[1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return self.fc(h.view(h.size(0), -1))


def linear_classifier(num_classes: int = 10) -> nn.Module:
    """A factory that accepts only some of the keyword arguments."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes))


FORWARD_CALLS = [0]


class _Counting(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):  # type: ignore[no-untyped-def]
        FORWARD_CALLS[0] += len(x)
        return self.inner(x)


def counting_mlp(in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10) -> nn.Module:
    """tiny_mlp that counts the images it is asked about in FORWARD_CALLS: a query meter."""
    return _Counting(tiny_mlp(in_channels, image_size, num_classes))


def payload(**_: object) -> nn.Module:
    """What a hostile card would call: leaves a marker (the path in $UAPFP_TEST_MARKER), then a model."""
    import os
    import pathlib

    pathlib.Path(os.environ["UAPFP_TEST_MARKER"]).touch()
    return tiny_mlp()


# --------------------------------------------------------------------------- crafted ONNX models


def external(array, name: str, location: str):  # type: ignore[no-untyped-def]
    """A TensorProto of ``array``'s shape and type whose data is to be read from the file ``location``."""
    import onnx
    from onnx import TensorProto, numpy_helper

    tensor = numpy_helper.from_array(array, name=name)
    onnx.external_data_helper.set_external_data(tensor, location=location, offset=0, length=array.nbytes)
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    return tensor


def linear_onnx(folder, weight, *, extra_nodes=(), logits: str = "mm"):  # type: ignore[no-untyped-def]
    """``folder/model.onnx``: Flatten + MatMul by the TensorProto ``weight`` (784, 10), then
    ``extra_nodes``; the output is the tensor named ``logits``."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"], axis=1), helper.make_node("MatMul", ["flat", "W"], ["mm"]),
         *extra_nodes],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 1, 28, 28])],
        [helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["n", 10])],
        initializer=[weight],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())  # onnx.save would try to write the external files
    return path


# --------------------------------------------------------------------------- a faulty server for client tests


def _broken_outputs():  # type: ignore[no-untyped-def]
    import torch

    return {
        "nan": lambda x: torch.full((len(x), 10), float("nan")),
        "negative": lambda x: torch.full((len(x), 10), -0.1),
        "unnormalised": lambda x: torch.full((len(x), 10), 0.5),
        "nine": lambda x: torch.full((len(x), 9), 1 / 9),
    }


def broken_server_app():  # type: ignore[no-untyped-def]
    """An ASGI app answering garbage at /v2/models/{nan,negative,unnormalised,nine}.

    Each model advertises 10 classes and FP32 probabilities, then answers NaN, negative
    numbers, rows summing to 5, or 9 classes: what a buggy or hostile server could send.
    """
    from uapfp.serve import create_app
    from uapfp.suspects.local import TorchSuspect

    class Unchecked(TorchSuspect):
        def check_output(self, probs, n):  # type: ignore[no-untyped-def]
            return probs  # a server that validates nothing

    apps = {
        kind: create_app(
            Unchecked(fn, logits=False, input_shape=(1, 28, 28), num_classes=10, name=kind), model_name=kind
        )
        for kind, fn in _broken_outputs().items()
    }
    first = next(iter(apps.values()))

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        parts = scope.get("path", "").split("/")
        target = apps.get(parts[3]) if len(parts) > 3 and parts[:3] == ["", "v2", "models"] else None
        await (target or first)(scope, receive, send)

    return app


if __name__ == "__main__":  # python -m tests.helpers: serve broken_server_app on a free port
    from uapfp.serve import run_app

    run_app(
        broken_server_app(),
        port=0,
        on_ready=lambda base: print(f"serving broken models at {base}/v2/models/nan", flush=True),
    )


def paper_c(in_channels: int = 1, image_size: tuple[int, int] = (28, 28), num_classes: int = 10) -> nn.Module:
    """The registered architecture C through a factory of the user's: the same architecture under another name."""
    from uapfp.archs import create_model

    return create_model("C", in_channels=in_channels, image_size=image_size, num_classes=num_classes)
