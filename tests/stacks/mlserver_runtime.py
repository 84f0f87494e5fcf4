"""An MLServer custom runtime around an ONNX model, as an MLServer user writes one (runs in .test-venvs/mlserver).

Its model-settings.json names it ``mlserver_runtime.OnnxRuntime`` with ``parameters.extra``
``{"onnx": PATH, "answer": "probabilities" | "logits"}``.
"""

import numpy as np
import onnxruntime
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        extra = self.settings.parameters.extra
        self.session = onnxruntime.InferenceSession(extra["onnx"], providers=["CPUExecutionProvider"])
        self.answer = extra["answer"]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        logits = self.session.run(None, {self.session.get_inputs()[0].name: x})[0]
        if self.answer == "probabilities":
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            logits = e / e.sum(axis=1, keepdims=True)
        out = NumpyCodec.encode_output(self.answer, logits.astype(np.float32))
        return InferenceResponse(model_name=self.name, outputs=[out])
