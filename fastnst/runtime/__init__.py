"""The torch-free runtime: a model file run by onnxruntime, with NumPy around it.

The ONNX graph is built from the ``.safetensors`` file's header and weights when it is
loaded (:mod:`fastnst.runtime.graph`); nothing here imports torch.
"""
