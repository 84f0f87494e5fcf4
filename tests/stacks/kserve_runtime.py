"""A KServe custom runtime around an ONNX model, as a KServe user writes one (runs in .test-venvs/kserve).

python kserve_runtime.py --http_port PORT --grpc_port PORT2 --serve NAME MODEL.onnx probabilities|logits [--serve ...]
"""

import argparse
import uuid

import numpy as np
import onnxruntime
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server


class OnnxModel(Model):
    def __init__(self, name: str, path: str, answer: str) -> None:
        super().__init__(name)
        self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.answer = answer
        self.ready = True

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        x = payload.inputs[0].as_numpy().astype(np.float32)
        logits = self.session.run(None, {self.session.get_inputs()[0].name: x})[0]
        if self.answer == "probabilities":
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            out = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        else:
            out = logits.astype(np.float32)
        result = InferOutput(name=self.answer, shape=list(out.shape), datatype="FP32")
        result.set_data_from_numpy(out)
        return InferResponse(model_name=self.name, infer_outputs=[result], response_id=payload.id or str(uuid.uuid4()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--serve", nargs=3, action="append", metavar=("NAME", "ONNX", "ANSWER"), required=True)
    args, _ = parser.parse_known_args()
    ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, enable_grpc=False).start(
        [OnnxModel(name, path, answer) for name, path, answer in args.serve]
    )
